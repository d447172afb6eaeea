"""Configuration: a FineTuneJob spec turned into typed trainer settings.

The spec arrives as ``--config FILE`` (YAML or JSON: a whole FineTuneJob manifest or only its spec)
or as JSON in env ``FINETUNE_JOB_SPEC`` (the operator's contract). It is first validated with the
same ``finetune_api`` models as the CRD (D1), so the trainer refuses exactly what the API server
refuses, then dumped back to its camelCase form and mapped one-to-one onto the dataclasses below
(litgpt style: one typed group per spec section). Reading the camelCase wire form — the API's
public contract — keeps this module independent of the models' Python attribute names.

Every problem raises ConfigError naming the field path (``spec.training.learningRate``) or the
file, which ends the process with the permanent exit code 78.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

TASKS = ("sequence-classification", "causal-lm")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] | str = "all-linear"
    bias: str = "none"


@dataclass(frozen=True)
class ModelSettings:
    uri: str
    task: str
    num_labels: int | None = None
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    lora: LoraSettings | None = None
    dropout: float | None = None
    labels: tuple[str, ...] | None = None
    revision: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class DatasetSettings:
    train: str
    validation: str | None = None
    test: str | None = None
    format: str = "auto"
    text_field: str = "text"
    text_pair_field: str | None = None
    label_field: str = "label"
    prompt_field: str = "prompt"
    response_field: str = "response"
    labels: tuple[str, ...] | None = None
    max_length: int = 256
    split_validation: float = 0.1
    split_test: float = 0.0
    split_seed: int = 42


@dataclass(frozen=True)
class EvaluationSettings:
    strategy: str = "epoch"  # steps | epoch | no
    every_steps: int | None = None
    metric: str = "loss"
    greater_is_better: bool | None = None
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0


@dataclass(frozen=True)
class TrainingSettings:
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size_per_device: int = 16
    eval_batch_size_per_device: int | None = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    head_learning_rate: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    scheduler: str = "linear"
    optimizer: str = "adamw_torch"
    max_grad_norm: float = 1.0
    precision: str = "auto"
    seed: int = 42
    class_weights: str | tuple[float, ...] | None = None  # "auto", explicit weights, or None
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)


@dataclass(frozen=True)
class CheckpointSettings:
    uri: str | None = None
    every_steps: int | None = 500
    every_seconds: int | None = None
    keep: int = 3


@dataclass(frozen=True)
class OutputSettings:
    uri: str
    merge_lora: bool = True
    save_tokenizer: bool = True
    write_model_card: bool = True


@dataclass(frozen=True)
class TrainerSettings:
    """Everything the trainer needs, typed; ``spec`` is the validated camelCase spec it came from."""

    model: ModelSettings
    dataset: DatasetSettings
    training: TrainingSettings
    checkpoint: CheckpointSettings
    output: OutputSettings
    spec: Mapping[str, Any]
    job_name: str = "finetune"


# ---------------------------------------------------------------------------------------------
# Reading the raw configuration


def load_raw_document(config_path: str | None, env: Mapping[str, str]) -> Any:
    """The configuration document from ``--config FILE`` or env ``FINETUNE_JOB_SPEC``."""
    if config_path:
        path = Path(config_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config file {config_path}: cannot be read ({exc.strerror})") from exc
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_path}: not valid YAML or JSON ({exc})") from exc
    if env.get("FINETUNE_JOB_SPEC"):
        try:
            return json.loads(env["FINETUNE_JOB_SPEC"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"env FINETUNE_JOB_SPEC: not valid JSON ({exc})") from exc
    raise ConfigError(
        "no configuration: pass --config FILE or set env FINETUNE_JOB_SPEC to the job spec as JSON"
    )


def validate_with_api(document: Any) -> dict[str, Any]:
    """Validate with finetune_api (a FineTuneJob or its spec) and return the defaulted camelCase dump."""
    from finetune_api import SpecError, spec_from_document

    if not isinstance(document, dict):
        raise ConfigError("configuration: expected a mapping (a FineTuneJob manifest or its spec)")
    try:
        spec = spec_from_document(document)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc
    dumped = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    dumped.setdefault("checkpoint", {})["uri"] = spec.effective_checkpoint_uri
    return dumped


# ---------------------------------------------------------------------------------------------
# Typed access to the camelCase dict


def _section(spec: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    node: Any = spec
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            return {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"spec.{path}: expected a mapping")
    return node


def _get(section: Mapping[str, Any], path: str, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = section.get(key, default)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ConfigError(f"spec.{path}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _required_str(section: Mapping[str, Any], path: str, key: str) -> str:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"spec.{path}.{key} is required: set it to a URI such as s3://bucket/key or file:///path"
        )
    return value


def _names(value: Any) -> tuple[str, ...] | None:
    return tuple(str(x) for x in value) if isinstance(value, list) else None


def _model(spec: Mapping[str, Any]) -> ModelSettings:
    m = _section(spec, "model")
    task = m.get("task", "sequence-classification")
    if task not in TASKS:
        raise ConfigError(f"spec.model.task: {task!r} is not one of {', '.join(TASKS)}")
    freeze = _section(spec, "model.freeze")
    lora_raw = m.get("lora")
    lora = None
    if isinstance(lora_raw, Mapping):
        targets = lora_raw.get("targetModules", ["all-linear"])
        if isinstance(targets, list) and targets == ["all-linear"]:
            targets = "all-linear"
        lora = LoraSettings(
            r=_get(lora_raw, "model.lora", "r", int, 8),
            alpha=_get(lora_raw, "model.lora", "alpha", int, 16),
            dropout=_get(lora_raw, "model.lora", "dropout", float, 0.05),
            target_modules=tuple(targets) if isinstance(targets, list) else str(targets),
            bias=_get(lora_raw, "model.lora", "bias", str, "none"),
        )
    return ModelSettings(
        uri=_required_str(m, "model", "uri"),
        task=task,
        num_labels=_get(m, "model", "numLabels", int, None),
        freeze_embeddings=_get(freeze, "model.freeze", "embeddings", bool, False),
        freeze_layers=_get(freeze, "model.freeze", "layers", int, 0),
        lora=lora,
        dropout=_get(m, "model", "dropout", float, None),
        labels=_names(m.get("labels")),
        revision=_get(m, "model", "revision", str, None),
        trust_remote_code=_get(m, "model", "trustRemoteCode", bool, False),
    )


def _dataset(spec: Mapping[str, Any]) -> DatasetSettings:
    d = _section(spec, "dataset")
    split = _section(spec, "dataset.split")
    return DatasetSettings(
        train=_required_str(d, "dataset", "train"),
        validation=_get(d, "dataset", "validation", str, None),
        test=_get(d, "dataset", "test", str, None),
        format=_get(d, "dataset", "format", str, "auto"),
        text_field=_get(d, "dataset", "textField", str, "text"),
        text_pair_field=_get(d, "dataset", "textPairField", str, None),
        label_field=_get(d, "dataset", "labelField", str, "label"),
        prompt_field=_get(d, "dataset", "promptField", str, "prompt"),
        response_field=_get(d, "dataset", "responseField", str, "response"),
        labels=_names(_section(spec, "model").get("labels")),
        max_length=_get(d, "dataset", "maxLength", int, 256),
        split_validation=_get(split, "dataset.split", "validation", float, 0.1),
        split_test=_get(split, "dataset.split", "test", float, 0.0),
        split_seed=_get(split, "dataset.split", "seed", int, 42),
    )


def _training(spec: Mapping[str, Any]) -> TrainingSettings:
    t = _section(spec, "training")
    ev = _section(spec, "training.evaluation")
    es = ev.get("earlyStopping")
    mode = _get(t, "training", "classWeights", str, "none")
    class_weights: str | tuple[float, ...] | None
    if mode == "explicit":
        values = t.get("classWeightValues")
        if not isinstance(values, list) or not values:
            raise ConfigError("spec.training.classWeightValues is required when classWeights is explicit")
        class_weights = tuple(float(w) for w in values)
    elif mode == "auto":
        class_weights = "auto"
    else:
        class_weights = None
    return TrainingSettings(
        epochs=float(_get(t, "training", "epochs", (int, float), 3)),
        max_steps=_get(t, "training", "maxSteps", int, None),
        batch_size_per_device=_get(t, "training", "batchSizePerDevice", int, 8),
        eval_batch_size_per_device=_get(t, "training", "evalBatchSizePerDevice", int, None),
        gradient_accumulation_steps=_get(t, "training", "gradientAccumulationSteps", int, 1),
        learning_rate=_get(t, "training", "learningRate", float, 2e-5),
        head_learning_rate=_get(t, "training", "headLearningRate", float, None),
        weight_decay=_get(t, "training", "weightDecay", float, 0.0),
        warmup_steps=_get(t, "training", "warmupSteps", int, 0),
        warmup_ratio=_get(t, "training", "warmupRatio", float, 0.0),
        scheduler=_get(t, "training", "scheduler", str, "linear"),
        optimizer=_get(t, "training", "optimizer", str, "adamw_torch"),
        max_grad_norm=_get(t, "training", "maxGradNorm", float, 1.0),
        precision=_get(t, "training", "precision", str, "auto"),
        seed=_get(t, "training", "seed", int, 42),
        class_weights=class_weights,
        gradient_checkpointing=_get(t, "training", "gradientCheckpointing", bool, False),
        logging_steps=_get(t, "training", "loggingSteps", int, 10),
        evaluation=EvaluationSettings(
            strategy=_get(ev, "training.evaluation", "strategy", str, "epoch"),
            every_steps=_get(ev, "training.evaluation", "everySteps", int, None),
            metric=_get(ev, "training.evaluation", "metric", str, "loss"),
            greater_is_better=_get(ev, "training.evaluation", "greaterIsBetter", bool, None),
            early_stopping_patience=_get(es, "training.evaluation.earlyStopping", "patience", int, 3)
            if isinstance(es, Mapping)
            else None,
            early_stopping_threshold=_get(es, "training.evaluation.earlyStopping", "threshold", float, 0.0)
            if isinstance(es, Mapping)
            else 0.0,
        ),
    )


def settings_from_spec(spec: Mapping[str, Any], job_name: str = "finetune") -> TrainerSettings:
    """Map a validated camelCase spec onto the typed settings (pure; raises ConfigError)."""
    c = _section(spec, "checkpoint")
    o = _section(spec, "output")
    output_uri = _required_str(o, "output", "uri")
    return TrainerSettings(
        model=_model(spec),
        dataset=_dataset(spec),
        training=_training(spec),
        checkpoint=CheckpointSettings(
            uri=_get(c, "checkpoint", "uri", str, None) or output_uri.rstrip("/") + "/checkpoints",
            every_steps=_get(c, "checkpoint", "everySteps", int, 500),
            every_seconds=_get(c, "checkpoint", "everySeconds", int, None),
            keep=_get(c, "checkpoint", "keep", int, 3),
        ),
        output=OutputSettings(
            uri=output_uri,
            merge_lora=_get(o, "output", "mergeLora", bool, True),
            save_tokenizer=_get(o, "output", "saveTokenizer", bool, True),
            write_model_card=_get(o, "output", "writeModelCard", bool, True),
        ),
        spec=dict(spec),
        job_name=job_name,
    )


def load_settings(config_path: str | None, env: Mapping[str, str] | None = None) -> TrainerSettings:
    """The whole path from a file or the environment to typed settings."""
    environ = os.environ if env is None else env
    spec = validate_with_api(load_raw_document(config_path, environ))
    return settings_from_spec(spec, job_name=environ.get("FINETUNE_JOB_NAME", "finetune"))
