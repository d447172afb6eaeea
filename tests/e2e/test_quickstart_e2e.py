"""End to end on the real local cluster: the quickstart job trains for real on the process node.

Each test applies a FineTuneJob, and the operator runs it as an Indexed Job of 2 workers under
torchrun (gloo) that fine-tune the pretrained MiniLM from the local S3 server. What the issue asks:

- the job trains and Succeeds, status.progress reaches 100%, the model at output.uri classifies;
  killing the operator meanwhile does not disturb training, and its successor gets the status right;
  the operator's and the trainer's /metrics carry every series documented in docs/monitoring.md;
- a deleted worker pod restarts the gang, the next attempt resumes from the committed checkpoint
  (its first logged step follows that checkpoint, not 0), one preemption and no failure counted;
- a dataset URI that does not exist fails the job within a minute, naming the URI, with no retries.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from localcluster.quickstart import first_training_step, pod_log_lines, resumed_from
from localcluster.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_TIMEOUT = 600.0  # two CPU workers on 2 shared cores; the job usually takes 1-3 minutes
METRICS_PORT = 9090


def documented_series(prefix: str) -> set[str]:
    """Every metric name with `prefix` that docs/monitoring.md documents (its tables' first column)."""
    text = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    return set(re.findall(rf"^\| `({prefix}[a-z_]+)`", text, flags=re.MULTILINE))


def scrape(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=3) as answer:
        text = answer.read().decode()
    families: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample)
        families.setdefault(family.name, [])
    return families


def status_of(finetunejobs: Any, name: str) -> dict[str, Any]:
    return (finetunejobs.get(name) or {}).get("status") or {}


def rank0_metrics_url(finetunejobs: Any, name: str, attempt: int) -> str:
    pods = finetunejobs.wait_pods_running(name, attempt, 2, timeout=TRAINING_TIMEOUT)
    rank0 = next(p for p in pods if p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "0")
    return f"http://{rank0.status.pod_ip}:{METRICS_PORT}/metrics"


def trainer_step(url: str) -> int | None:
    try:
        samples = scrape(url).get("finetune_trainer_step") or []
    except OSError:
        return None
    return int(samples[0].value) if samples else None


def reconciles(operator: Any) -> float:
    samples = scrape(f"http://127.0.0.1:{operator.metrics_port}/metrics").get(
        "finetune_operator_reconcile_total"
    )
    return sum(s.value for s in samples or [] if s.labels.get("result") == "ok")


def classify(model_dir: Path, texts: list[str]) -> list[str]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    import torch

    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return [model.config.id2label[int(i)] for i in logits.argmax(dim=-1)]


def test_two_workers_train_and_succeed_undisturbed_by_an_operator_crash(
    quickstart_job, finetunejobs, e2e_operator, s3, tmp_path, namespace
) -> None:
    manifest = quickstart_job()
    name = manifest["metadata"]["name"]
    finetunejobs.create(manifest)

    # Progress flows: rank 0's metrics → the operator → status.progress and the operator's /metrics.
    url = rank0_metrics_url(finetunejobs, name, attempt=1)
    finetunejobs.wait_status(
        name, lambda s: (s.get("progress") or {}).get("step", 0) >= 2, "progress.step >= 2", TRAINING_TIMEOUT
    )
    trainer_series = scrape(url)
    assert documented_series("finetune_trainer_") <= set(trainer_series), (
        "trainer /metrics lacks documented series"
    )
    operator_series = scrape(f"http://127.0.0.1:{e2e_operator.metrics_port}/metrics")
    assert documented_series("finetune_operator_") <= set(operator_series), "operator /metrics lacks series"
    job_steps = [
        s
        for s in operator_series["finetune_operator_job_step"]
        if s.labels == {"namespace": namespace, "job": name}
    ]
    assert job_steps and job_steps[0].value >= 2

    # The operator crashes; training goes on by itself; the restarted operator converges.
    e2e_operator.kill()
    step_at_crash = wait_until(lambda: trainer_step(url), 60, "the trainer's step")
    wait_until(
        lambda: (trainer_step(url) or 0) >= step_at_crash + 3,
        TRAINING_TIMEOUT,
        "training to advance without operator",
    )
    assert {p.metadata.name for p in finetunejobs.pods(name)} == {
        p.metadata.name for p in finetunejobs.pods(name, 1)
    }
    e2e_operator.start()
    status = finetunejobs.wait_condition(name, "Succeeded", timeout=TRAINING_TIMEOUT)

    progress = status["progress"]
    assert progress["percent"] == 100 and progress["step"] == progress["totalSteps"] > 0
    assert status["attempt"] == 1 and status["restarts"]["total"] == 0
    assert [j.metadata.name for j in finetunejobs.jobs(name)] == [f"{name}-a1"]
    output = status["output"]["uri"]
    assert output == manifest["spec"]["output"]["uri"]
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert "f1_macro" in succeeded["message"] and output in succeeded["message"]

    # The published model loads and classifies.
    local = tmp_path / "model"
    s3.get(output.removeprefix("s3://") + "/", str(local), recursive=True)
    assert json.loads((local / "labels.json").read_text())
    predictions = classify(
        local,
        [
            "The kettle is fantastic.",
            "The router broke after two days.",
            "Honestly, the lamp works perfectly.",
        ],
    )
    assert predictions == ["positive", "negative", "positive"]


def test_deleted_worker_resumes_from_the_committed_checkpoint(
    quickstart_job, finetunejobs, e2e_operator, core_v1, cluster, namespace
) -> None:
    manifest = quickstart_job()
    name = manifest["metadata"]["name"]
    finetunejobs.create(manifest)
    status = finetunejobs.wait_status(
        name, lambda s: (s.get("checkpoint") or {}).get("step"), "a committed checkpoint", TRAINING_TIMEOUT
    )
    committed = status["checkpoint"]["step"]
    victim = next(p for p in finetunejobs.pods(name, 1) if p.metadata.name.startswith(f"{name}-a1-1"))
    core_v1.delete_namespaced_pod(victim.metadata.name, namespace)  # as a preemption or drain does

    finetunejobs.wait_pods_running(name, 2, 2, timeout=TRAINING_TIMEOUT)
    status = finetunejobs.wait_condition(name, "Succeeded", timeout=TRAINING_TIMEOUT)
    assert status["restarts"] == {"total": 1, "preemptions": 1, "failures": 0}
    assert status["attempt"] == 2 and status["progress"]["percent"] == 100

    rank0 = next(p for p in finetunejobs.pods(name, 2) if p.metadata.name.startswith(f"{name}-a2-0"))
    resumed = resumed_from(pod_log_lines(cluster.config, rank0))
    first = first_training_step(pod_log_lines(cluster.config, rank0))
    assert resumed is not None and resumed >= committed, (resumed, committed)
    logging_steps = manifest["spec"]["training"]["loggingSteps"]
    assert first is not None and resumed < first <= resumed + logging_steps, (resumed, first)
    reasons = [event.reason for event in finetunejobs.events(name)]
    assert "CheckpointCommitted" in reasons


def test_missing_dataset_fails_within_a_minute_naming_the_uri(
    quickstart_job, finetunejobs, e2e_operator, s3_bucket
) -> None:
    missing = f"s3://{s3_bucket}/data/does-not-exist/train.jsonl"
    manifest = quickstart_job(dataset={"train": missing})
    name = manifest["metadata"]["name"]
    created = time.monotonic()
    finetunejobs.create(manifest)
    status = finetunejobs.wait_condition(name, "Failed", timeout=60)
    elapsed = time.monotonic() - created
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert missing in failed["message"] and failed["reason"] == "InvalidConfiguration", failed
    assert status["restarts"]["total"] == 0 and status["attempt"] == 1
    e2e_operator.restart()  # a fresh operator's passes over the Failed job must not start anything new
    # A finished job gets one pass from a fresh operator (its watch's initial listing) and no timer;
    # that pass, too, must create nothing.
    wait_until(lambda: reconciles(e2e_operator) >= 1, 60, "the restarted operator's pass over the job")
    assert [j.metadata.name for j in finetunejobs.jobs(name)] == [f"{name}-a1"]
    assert status_of(finetunejobs, name)["attempt"] == 1
    print(f"failed after {elapsed:.1f}s")
