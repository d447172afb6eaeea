"""The FineTuneJob models: defaults, aliases, URIs, error messages, status and immutability helpers."""

import json
import subprocess
import sys

import pytest

from finetune_api import (
    URI_SCHEMES,
    FineTuneJob,
    FineTuneJobSpec,
    FineTuneJobStatus,
    Phase,
    SpecError,
    parse_spec,
    spec_from_document,
    storage_uris,
)
from finetune_api.immutability import immutable_changes, immutable_fields
from tests.unit.test_api_invalid import VALID_SPEC, apply_changes


def test_defaults_are_safe_on_a_cpu() -> None:
    spec = parse_spec(VALID_SPEC)
    assert spec.training.precision == "auto"
    assert spec.training.epochs == 3
    assert spec.training.learning_rate == pytest.approx(2e-5)
    assert spec.training.evaluation.strategy == "epoch"
    assert spec.resources.workers == 1
    assert spec.resources.gpus_per_worker == 0
    assert spec.dataset.split.validation == pytest.approx(0.1)
    assert spec.model.lora is None
    assert spec.checkpoint.keep == 3
    assert spec.run_policy.suspend is False
    assert spec.run_policy.max_restarts == 3


def test_the_dump_is_camel_case_and_parses_back_to_the_same_spec() -> None:
    spec = parse_spec(VALID_SPEC)
    dumped = spec.model_dump(by_alias=True, mode="json")
    assert "runPolicy" in dumped
    assert "learningRate" in dumped["training"]
    assert parse_spec(json.loads(json.dumps(dumped))) == spec


def test_snake_case_names_are_accepted_in_python() -> None:
    spec = FineTuneJobSpec.model_validate(
        apply_changes(VALID_SPEC, {"training": {"learning_rate": 1e-4}, "run_policy": {"max_restarts": 0}})
    )
    assert spec.training.learning_rate == pytest.approx(1e-4)
    assert spec.run_policy.max_restarts == 0


@pytest.mark.parametrize("scheme", URI_SCHEMES)
def test_every_accepted_scheme_parses(scheme: str) -> None:
    parse_spec(apply_changes(VALID_SPEC, {"model.uri": f"{scheme}://somewhere/model"}))


@pytest.mark.parametrize(
    "uri", ["http://host/m", "https://host/m", "/abs/path", "s3:/bucket", "S3://bucket/m", ""]
)
def test_other_uris_are_refused_with_the_accepted_schemes_listed(uri: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(apply_changes(VALID_SPEC, {"model.uri": uri}))
    message = str(refused.value)
    assert "spec.model.uri" in message
    if uri:
        assert all(f"{scheme}://" in message for scheme in URI_SCHEMES)


def test_the_error_names_the_field_path_and_the_bound() -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(apply_changes(VALID_SPEC, {"training": {"learningRate": 0}}))
    assert str(refused.value) == "invalid FineTuneJob: spec.training.learningRate: must be greater than 0"


def test_every_error_is_reported_not_only_the_first() -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(apply_changes(VALID_SPEC, {"training": {"epochs": 0, "batchSizePerDevice": 0}}))
    assert {e.path for e in refused.value.errors} == {
        "spec.training.epochs",
        "spec.training.batchSizePerDevice",
    }


def test_credentials_are_not_needed_without_cloud_storage() -> None:
    local = {
        "model": {
            "uri": "hf://sentence-transformers/all-MiniLM-L6-v2",
            "task": "causal-lm",
            "revision": "main",
        },
        "dataset": {"train": "pvc://datasets/train.jsonl"},
        "output": {"uri": "file:///output/model"},
    }
    spec = parse_spec(local)
    assert spec.storage.secret_ref is None
    assert storage_uris(spec) == [
        "hf://sentence-transformers/all-MiniLM-L6-v2",
        "pvc://datasets/train.jsonl",
        "file:///output/model",
    ]


def test_any_cloud_uri_needs_credentials() -> None:
    spec = apply_changes(
        VALID_SPEC,
        {"storage": {}, "model.uri": "file:///m", "dataset.train": "file:///t", "output.uri": "file:///o"},
    )
    parse_spec(spec)
    for scheme in ("s3", "gs", "az"):
        with pytest.raises(SpecError, match=r"spec\.storage\.secretRef"):
            parse_spec(apply_changes(spec, {"dataset.test": f"{scheme}://bucket/test.jsonl"}))


def test_quantities_are_kept_as_strings() -> None:
    spec = parse_spec(apply_changes(VALID_SPEC, {"resources": {"cpu": 4, "memory": "16Gi"}}))
    assert (spec.resources.cpu, spec.resources.memory) == ("4", "16Gi")


def test_the_checkpoint_uri_defaults_below_the_output() -> None:
    assert parse_spec(VALID_SPEC).effective_checkpoint_uri == "s3://finetune/outputs/reviews/checkpoints"
    explicit = parse_spec(apply_changes(VALID_SPEC, {"checkpoint": {"uri": "s3://ckpt/run"}}))
    assert explicit.effective_checkpoint_uri == "s3://ckpt/run"


def test_a_whole_manifest_or_a_bare_spec_parse_alike() -> None:
    manifest = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "x"},
        "spec": VALID_SPEC,
    }
    assert spec_from_document(manifest) == spec_from_document(VALID_SPEC)
    job = FineTuneJob.model_validate(manifest)
    assert job.spec == parse_spec(VALID_SPEC)
    assert job.status is None


def test_status_reads_a_written_status_and_ignores_newer_keys() -> None:
    status = FineTuneJobStatus.model_validate(
        {
            "phase": "Running",
            "conditions": [
                {"type": "Running", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
            ],
            "restarts": {"total": 1, "preemptions": 1},
            "progress": {"step": 120, "totalSteps": 300, "percent": 40.0, "trainLoss": 0.41},
            "checkpoint": {"uri": "s3://c/checkpoint-100", "step": 100},
            "someFutureField": 1,
        }
    )
    assert status.phase is Phase.RUNNING
    assert status.progress is not None and status.progress.total_steps == 300
    assert status.checkpoint is not None and status.checkpoint.step == 100
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert dumped["conditions"][0]["lastTransitionTime"] == "2025-01-01T00:00:00Z"


def test_only_the_lifecycle_knobs_are_mutable() -> None:
    paths = [path for path, _ in immutable_fields()]
    assert "runPolicy.suspend" not in paths
    assert "runPolicy.activeDeadlineSeconds" not in paths
    assert "runPolicy.ttlSecondsAfterFinished" not in paths
    assert {"model", "dataset", "training", "resources", "checkpoint", "output", "storage", "image"} <= set(
        paths
    )
    assert "runPolicy.maxRestarts" in paths


def test_immutable_changes_lists_what_may_not_change() -> None:
    old = parse_spec(VALID_SPEC)
    lifecycle = parse_spec(
        apply_changes(VALID_SPEC, {"runPolicy": {"suspend": True, "activeDeadlineSeconds": 60}})
    )
    assert immutable_changes(old, lifecycle) == []
    changed = parse_spec(
        apply_changes(VALID_SPEC, {"training": {"epochs": 9}, "runPolicy": {"maxRestarts": 0}})
    )
    assert [e.path for e in immutable_changes(old, changed)] == [
        "spec.training",
        "spec.runPolicy.maxRestarts",
    ]
    assert "is immutable" in immutable_changes(old, changed)[0].message


def test_the_package_imports_nothing_heavier_than_pydantic() -> None:
    code = (
        "import sys, finetune_api, finetune_api.generate; "
        "heavy = {'torch', 'transformers', 'kopf', 'kubernetes', 'finetune_operator', 'finetune_trainer'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
