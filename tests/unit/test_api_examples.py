"""Every manifest in examples/ parses with the models and says when to use it."""

from pathlib import Path

import pytest
import yaml

from finetune_api import FineTuneJob, parse_spec
from finetune_api.schedule import FineTuneSchedule
from finetune_api.sweep import FineTuneSweep
from localcluster.config import DEFAULT_PORT_BASE, S3_DEFAULT_BUCKET, Ports

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
REQUIRED_EXAMPLES = {"minimal", "classification-frozen", "lora-sft", "multi-gpu-kueue", "quickstart"}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_promised_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= REQUIRED_EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_parses_and_has_a_when_to_use_header(path: Path) -> None:
    document = _load(path)
    kinds = {"FineTuneJob": FineTuneJob, "FineTuneSchedule": FineTuneSchedule, "FineTuneSweep": FineTuneSweep}
    model = kinds[document["kind"]]
    assert model.model_validate(document).metadata["name"]
    header = path.read_text().split("apiVersion:", 1)[0]
    assert header.startswith(f"# {path.name}") and "Use it" in header


def test_minimal_holds_only_required_fields() -> None:
    spec = _load(next(p for p in EXAMPLES if p.stem == "minimal"))["spec"]
    assert set(spec) == {"model", "dataset", "output", "storage"}
    assert set(spec["model"]) == {"uri", "task", "numLabels"}
    assert set(spec["dataset"]) == {"train"} and set(spec["output"]) == {"uri"}


def test_the_gpu_example_carries_a_kueue_queue() -> None:
    job = _load(next(p for p in EXAMPLES if p.stem == "multi-gpu-kueue"))
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    spec = parse_spec(job["spec"])
    assert (spec.resources.workers, spec.resources.gpus_per_worker) == (4, 8)


def test_quickstart_runs_on_the_local_process_node_and_s3() -> None:
    spec = parse_spec(_load(next(p for p in EXAMPLES if p.stem == "quickstart"))["spec"])
    assert spec.resources.workers == 2 and spec.resources.gpus_per_worker == 0
    assert spec.resources.node_selector == {"finetune.dev/process-node": "true"}
    assert [(t.key, t.value, t.effect) for t in spec.resources.tolerations] == [
        ("finetune.dev/process-node", "true", "NoSchedule")
    ]
    assert spec.model.uri == f"s3://{S3_DEFAULT_BUCKET}/models/minilm"
    assert spec.dataset.train == f"s3://{S3_DEFAULT_BUCKET}/data/reviews/train.jsonl"
    assert spec.storage.endpoint == f"http://127.0.0.1:{Ports(DEFAULT_PORT_BASE).s3}"
