"""A table of invalid FineTuneJob manifests, each with the field path its refusal must name.

The same table runs against the models here and against the real API server in
tests/integration/test_crd_validation.py, so the CRD and `parse_spec` refuse the same things.
"""

import copy
from typing import Any

import pytest

from finetune_api import SpecError, parse_spec

DELETE = object()

VALID_SPEC: dict[str, Any] = {
    "model": {"uri": "s3://finetune/models/minilm", "task": "sequence-classification", "numLabels": 3},
    "dataset": {"train": "s3://finetune/data/reviews/train.jsonl"},
    "output": {"uri": "s3://finetune/outputs/reviews"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}

CAUSAL = {"model.task": "causal-lm", "model.numLabels": DELETE}

# (case id, changes to VALID_SPEC as {dotted path: value or DELETE}, field path the error must name)
INVALID_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("uri-http-scheme", {"model.uri": "http://example.com/model"}, "spec.model.uri"),
    ("uri-no-scheme", {"dataset.train": "train.jsonl"}, "spec.dataset.train"),
    ("uri-ftp-output", {"output.uri": "ftp://host/out"}, "spec.output.uri"),
    ("uri-whitespace", {"dataset.validation": "s3://bucket/my file.jsonl"}, "spec.dataset.validation"),
    ("checkpoint-to-hf", {"checkpoint": {"uri": "hf://org/ckpt"}}, "spec.checkpoint.uri"),
    (
        "checkpoint-equals-output",
        {"checkpoint": {"uri": "s3://finetune/outputs/reviews"}},
        "spec.checkpoint.uri",
    ),
    ("task-unknown", {"model.task": "token-classification"}, "spec.model.task"),
    ("num-labels-missing", {"model.numLabels": DELETE}, "spec.model.numLabels"),
    ("num-labels-with-causal-lm", {"model.task": "causal-lm"}, "spec.model.numLabels"),
    ("num-labels-one", {"model.numLabels": 1}, "spec.model.numLabels"),
    ("labels-count-mismatch", {"model.labels": ["a", "b"]}, "spec.model.labels"),
    ("labels-duplicate", {"model.labels": ["a", "b", "a"]}, "spec.model.labels"),
    ("revision-without-hf", {"model.revision": "main"}, "spec.model.revision"),
    ("lora-with-freeze", {"model.lora": {"r": 8}, "model.freeze": {"layers": 2}}, "spec.model.lora"),
    ("lora-rank-zero", {"model.lora": {"r": 0}}, "spec.model.lora.r"),
    (
        "lora-all-linear-mixed",
        {"model.lora": {"targetModules": ["all-linear", "query"]}},
        "spec.model.lora.targetModules",
    ),
    ("lora-dropout-one", {"model.lora": {"dropout": 1.0}}, "spec.model.lora.dropout"),
    ("split-leaves-nothing", {"dataset.split": {"validation": 0.6, "test": 0.5}}, "spec.dataset.split"),
    ("format-unknown", {"dataset.format": "xml"}, "spec.dataset.format"),
    ("max-length-tiny", {"dataset.maxLength": 4}, "spec.dataset.maxLength"),
    ("secret-missing-for-s3", {"storage": DELETE}, "spec.storage.secretRef"),
    ("secret-name-invalid", {"storage.secretRef.name": "S3_Credentials"}, "spec.storage.secretRef.name"),
    ("endpoint-not-url", {"storage.endpoint": "minio:9000"}, "spec.storage.endpoint"),
    (
        "endpoint-expands-a-secret",
        {"storage.endpoint": "https://attacker.example/$(AWS_SECRET_ACCESS_KEY)"},
        "spec.storage.endpoint",
    ),
    ("region-expands-a-variable", {"storage.region": "eu-west-1$(HF_TOKEN)"}, "spec.storage.region"),
    ("learning-rate-zero", {"training": {"learningRate": 0}}, "spec.training.learningRate"),
    ("learning-rate-string", {"training": {"learningRate": "fast"}}, "spec.training.learningRate"),
    ("epochs-zero", {"training": {"epochs": 0}}, "spec.training.epochs"),
    ("batch-size-zero", {"training": {"batchSizePerDevice": 0}}, "spec.training.batchSizePerDevice"),
    ("scheduler-unknown", {"training": {"scheduler": "exponential"}}, "spec.training.scheduler"),
    ("warmup-both", {"training": {"warmupSteps": 10, "warmupRatio": 0.1}}, "spec.training.warmupRatio"),
    ("head-lr-causal", {**CAUSAL, "training": {"headLearningRate": 0.001}}, "spec.training.headLearningRate"),
    ("class-weights-causal", {**CAUSAL, "training": {"classWeights": "auto"}}, "spec.training.classWeights"),
    (
        "class-weights-explicit-no-values",
        {"training": {"classWeights": "explicit"}},
        "spec.training.classWeightValues",
    ),
    (
        "class-weight-values-count",
        {"training": {"classWeights": "explicit", "classWeightValues": [1.0, 2.0]}},
        "spec.training.classWeightValues",
    ),
    (
        "class-weight-values-without-explicit",
        {"training": {"classWeightValues": [1.0, 2.0, 3.0]}},
        "spec.training.classWeightValues",
    ),
    ("bf16-on-cpu", {"training": {"precision": "bf16"}}, "spec.training.precision"),
    (
        "eval-steps-without-interval",
        {"training": {"evaluation": {"strategy": "steps"}}},
        "spec.training.evaluation.everySteps",
    ),
    (
        "eval-interval-with-epoch",
        {"training": {"evaluation": {"everySteps": 50}}},
        "spec.training.evaluation.everySteps",
    ),
    (
        "early-stopping-without-eval",
        {"training": {"evaluation": {"strategy": "no", "earlyStopping": {"patience": 2}}}},
        "spec.training.evaluation.earlyStopping",
    ),
    (
        "eval-without-validation-data",
        {"dataset.split": {"validation": 0.0}},
        "spec.training.evaluation.strategy",
    ),
    (
        "f1-with-causal-lm",
        {**CAUSAL, "training": {"evaluation": {"metric": "f1_macro"}}},
        "spec.training.evaluation.metric",
    ),
    (
        "perplexity-with-classification",
        {"training": {"evaluation": {"metric": "perplexity"}}},
        "spec.training.evaluation.metric",
    ),
    ("workers-zero", {"resources": {"workers": 0}}, "spec.resources.workers"),
    ("gpus-negative", {"resources": {"gpusPerWorker": -1}}, "spec.resources.gpusPerWorker"),
    ("cpu-not-quantity", {"resources": {"cpu": "lots"}}, "spec.resources.cpu"),
    (
        "toleration-exists-with-value",
        {"resources": {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]}},
        "spec.resources.tolerations[0].value",
    ),
    (
        "toleration-equal-without-key",
        {"resources": {"tolerations": [{"operator": "Equal", "value": "yes"}]}},
        "spec.resources.tolerations[0].key",
    ),
    (
        "priority-class-invalid",
        {"resources": {"priorityClassName": "High_Priority"}},
        "spec.resources.priorityClassName",
    ),
    ("checkpoint-keep-zero", {"checkpoint": {"keep": 0}}, "spec.checkpoint.keep"),
    ("max-restarts-negative", {"runPolicy": {"maxRestarts": -1}}, "spec.runPolicy.maxRestarts"),
    ("deadline-zero", {"runPolicy": {"activeDeadlineSeconds": 0}}, "spec.runPolicy.activeDeadlineSeconds"),
    ("image-with-space", {"image": "registry.example/trainer 0.1"}, "spec.image"),
    ("output-missing", {"output": DELETE}, "spec.output"),
    ("unknown-field-typo", {"training": {"learningRat": 0.001}}, "spec.training.learningRat"),
    ("unknown-section", {"modle": {"uri": "s3://x/y"}}, "spec.modle"),
    # Sharding and QLoRA (issue 18): QLoRA needs adapters and GPUs and is never sharded.
    (
        "quantization-without-lora",
        {"model.quantization": {}, "resources": {"gpusPerWorker": 1}},
        "spec.model.quantization",
    ),
    ("quantization-on-cpu", {"model.quantization": {}, "model.lora": {"r": 8}}, "spec.model.quantization"),
    (
        "quantization-with-fsdp",
        {"model.quantization": {}, "model.lora": {"r": 8}, "resources": {"gpusPerWorker": 1},
         "training": {"distribution": {"strategy": "fsdp"}}},
        "spec.model.quantization",
    ),
    (
        "quantization-with-cpu-offload",
        {"model.quantization": {}, "model.lora": {"r": 8}, "resources": {"gpusPerWorker": 1},
         "training": {"distribution": {"cpuOffload": True}}},
        "spec.model.quantization",
    ),
    (
        "hybrid-without-gpus",
        {"training": {"distribution": {"sharding": "hybrid"}}},
        "spec.training.distribution.sharding",
    ),
    (
        "ddp-with-fsdp-knobs",
        {"training": {"distribution": {"strategy": "ddp", "autoWrapLayers": ["BertLayer"]}}},
        "spec.training.distribution.strategy",
    ),
]  # fmt: skip


def apply_changes(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `spec` with each dotted path set to its value (or removed for DELETE)."""
    result = copy.deepcopy(spec)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)
    return result


def invalid_spec(changes: dict[str, Any]) -> dict[str, Any]:
    return apply_changes(VALID_SPEC, changes)


def test_the_base_spec_is_valid() -> None:
    parse_spec(VALID_SPEC)


def test_there_are_enough_cases() -> None:
    assert len(INVALID_CASES) >= 30
    assert len({case_id for case_id, _, _ in INVALID_CASES}) == len(INVALID_CASES)


@pytest.mark.parametrize(
    ("changes", "field_path"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_the_models_refuse_naming_the_field(changes: dict[str, Any], field_path: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(invalid_spec(changes))
    paths = [error.path for error in refused.value.errors]
    assert any(path == field_path or path.startswith(field_path + ".") for path in paths), str(refused.value)
