"""Configuration: a FineTuneJob spec turned into typed trainer settings.

The spec arrives as ``--config FILE`` (YAML or JSON: a whole FineTuneJob manifest or only its spec)
or as JSON in env ``FINETUNE_JOB_SPEC`` (the operator's contract). It is validated once with the
same ``finetune_api`` models as the CRD, so the trainer refuses exactly what the API server refuses
and gets the API's defaults. The typed groups below are then copied *mechanically* from the parsed
``FineTuneJobSpec`` (litgpt style: one group per spec section): no field has a default here and no
cross-field rule is checked again, so every default lives once, in ``finetune_api``
(docs/architecture.md, "One typed spec").

Every problem raises ConfigError naming the field path (``spec.training.learningRate``) or the
file, which ends the process with the permanent exit code 78.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from finetune_api.contract import ENV_JOB_NAME, ENV_JOB_SPEC

from .errors import ConfigError

if TYPE_CHECKING:
    from finetune_api import FineTuneJobSpec
    from finetune_api.learning import Lora
    from finetune_api.scaling import Distribution, Quantization

DEFAULT_JOB_NAME = "finetune"
"""Job name when the trainer runs outside a FineTuneJob (``--config FILE`` on a workstation)."""


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...] | str  # "all-linear" or module names
    bias: str


@dataclass(frozen=True)
class QuantizationSettings:
    """``model.quantization`` (QLoRA): how the frozen base weights are loaded."""

    bits: int  # 4 | 8
    type: str  # nf4 | fp4 (4 bits only)
    double_quant: bool
    compute_dtype: str  # bf16 | fp16 | fp32


@dataclass(frozen=True)
class ModelSettings:
    uri: str
    task: str
    num_labels: int | None
    freeze_embeddings: bool
    freeze_layers: int
    lora: LoraSettings | None
    dropout: float | None
    labels: tuple[str, ...] | None
    revision: str | None
    trust_remote_code: bool
    quantization: QuantizationSettings | None


@dataclass(frozen=True)
class DatasetSettings:
    train: str
    validation: str | None
    test: str | None
    format: str
    text_field: str
    text_pair_field: str | None
    label_field: str
    prompt_field: str
    response_field: str
    labels: tuple[str, ...] | None
    max_length: int
    split_validation: float
    split_test: float
    split_seed: int


@dataclass(frozen=True)
class EvaluationSettings:
    strategy: str  # steps | epoch | no
    every_steps: int | None
    metric: str
    greater_is_better: bool  # resolved: the spec's value or the API's documented default
    early_stopping_patience: int | None  # None: no early stopping
    early_stopping_threshold: float


@dataclass(frozen=True)
class DistributionSettings:
    """``training.distribution``: DDP or FSDP and FSDP's knobs (sharding.py decides ``auto``)."""

    strategy: str  # auto | ddp | fsdp
    sharding: str  # full | hybrid | grad-op
    cpu_offload: bool
    auto_wrap_layers: tuple[str, ...] | None  # None: the model's own `_no_split_modules`


@dataclass(frozen=True)
class TrainingSettings:
    epochs: float
    max_steps: int | None
    batch_size_per_device: int
    eval_batch_size_per_device: int  # resolved: absent in the spec means batchSizePerDevice
    gradient_accumulation_steps: int
    learning_rate: float
    head_learning_rate: float | None
    weight_decay: float
    warmup_steps: int
    warmup_ratio: float
    scheduler: str
    optimizer: str
    max_grad_norm: float
    precision: str
    seed: int
    class_weights: str | tuple[float, ...] | None  # "auto", explicit weights, or None
    gradient_checkpointing: bool
    logging_steps: int
    evaluation: EvaluationSettings
    distribution: DistributionSettings


@dataclass(frozen=True)
class CheckpointSettings:
    uri: str  # resolved: checkpoint.uri or <output.uri>/checkpoints
    every_steps: int
    every_seconds: int | None
    keep: int


@dataclass(frozen=True)
class OutputSettings:
    uri: str
    merge_lora: bool
    save_tokenizer: bool
    write_model_card: bool


@dataclass(frozen=True)
class TrainerSettings:
    """Everything the trainer needs, typed; ``spec`` is the validated camelCase spec it came from."""

    model: ModelSettings
    dataset: DatasetSettings
    training: TrainingSettings
    checkpoint: CheckpointSettings
    output: OutputSettings
    spec: Mapping[str, Any]
    job_name: str


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
    if env.get(ENV_JOB_SPEC):
        try:
            return json.loads(env[ENV_JOB_SPEC])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"env {ENV_JOB_SPEC}: not valid JSON ({exc})") from exc
    raise ConfigError(
        f"no configuration: pass --config FILE or set env {ENV_JOB_SPEC} to the job spec as JSON"
    )


def validate_with_api(document: Any) -> FineTuneJobSpec:
    """Validate with finetune_api (a FineTuneJob or its spec): the parsed, defaulted spec."""
    from finetune_api import SpecError, spec_from_document

    if not isinstance(document, dict):
        raise ConfigError("configuration: expected a mapping (a FineTuneJob manifest or its spec)")
    try:
        return spec_from_document(document)
    except SpecError as exc:
        raise ConfigError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# The parsed spec, copied onto the typed groups (no defaults, no rules: the API has both)


def _lora(lora: Lora | None) -> LoraSettings | None:
    if lora is None:
        return None
    targets = lora.target_modules
    return LoraSettings(
        r=lora.r,
        alpha=lora.alpha,
        dropout=lora.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else tuple(targets),
        bias=lora.bias,
    )


def _quantization(q: Quantization | None) -> QuantizationSettings | None:
    if q is None:
        return None
    return QuantizationSettings(
        bits=q.bits, type=q.type, double_quant=q.double_quant, compute_dtype=q.compute_dtype
    )


def _distribution(d: Distribution) -> DistributionSettings:
    layers = d.auto_wrap_layers
    return DistributionSettings(
        strategy=d.strategy,
        sharding=d.sharding,
        cpu_offload=d.cpu_offload,
        auto_wrap_layers=tuple(layers) if layers is not None else None,
    )


def _model(spec: FineTuneJobSpec) -> ModelSettings:
    m = spec.model
    return ModelSettings(
        uri=m.uri,
        task=m.task,
        num_labels=m.num_labels,
        freeze_embeddings=m.freeze.embeddings,
        freeze_layers=m.freeze.layers,
        lora=_lora(m.lora),
        dropout=m.dropout,
        labels=tuple(m.labels) if m.labels is not None else None,
        revision=m.revision,
        trust_remote_code=m.trust_remote_code,
        quantization=_quantization(m.quantization),
    )


def _dataset(spec: FineTuneJobSpec) -> DatasetSettings:
    d = spec.dataset
    return DatasetSettings(
        train=d.train,
        validation=d.validation,
        test=d.test,
        format=d.format,
        text_field=d.text_field,
        text_pair_field=d.text_pair_field,
        label_field=d.label_field,
        prompt_field=d.prompt_field,
        response_field=d.response_field,
        labels=tuple(spec.model.labels) if spec.model.labels is not None else None,
        max_length=d.max_length,
        split_validation=d.split.validation,
        split_test=d.split.test,
        split_seed=d.split.seed,
    )


def _class_weights(spec: FineTuneJobSpec) -> str | tuple[float, ...] | None:
    t = spec.training
    if t.class_weights == "explicit":
        # spec_rules guarantees classWeightValues with numLabels entries for explicit.
        return tuple(float(w) for w in t.class_weight_values or ())
    return "auto" if t.class_weights == "auto" else None


def _training(spec: FineTuneJobSpec) -> TrainingSettings:
    t = spec.training
    ev = t.evaluation
    es = ev.early_stopping
    return TrainingSettings(
        epochs=float(t.epochs),
        max_steps=t.max_steps,
        batch_size_per_device=t.batch_size_per_device,
        eval_batch_size_per_device=t.resolved_eval_batch_size_per_device,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        head_learning_rate=t.head_learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        warmup_ratio=t.warmup_ratio,
        scheduler=t.scheduler,
        optimizer=t.optimizer,
        max_grad_norm=t.max_grad_norm,
        precision=t.precision,
        seed=t.seed,
        class_weights=_class_weights(spec),
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        evaluation=EvaluationSettings(
            strategy=ev.strategy,
            every_steps=ev.every_steps,
            metric=ev.metric,
            greater_is_better=ev.resolved_greater_is_better,
            early_stopping_patience=es.patience if es is not None else None,
            early_stopping_threshold=es.threshold if es is not None else 0.0,
        ),
        distribution=_distribution(t.distribution),
    )


def settings_from_spec(spec: FineTuneJobSpec, job_name: str = DEFAULT_JOB_NAME) -> TrainerSettings:
    """Copy a parsed spec onto the typed settings (pure)."""
    c = spec.checkpoint
    o = spec.output
    checkpoint_uri = spec.effective_checkpoint_uri
    wire = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    wire.setdefault("checkpoint", {})["uri"] = checkpoint_uri
    return TrainerSettings(
        model=_model(spec),
        dataset=_dataset(spec),
        training=_training(spec),
        checkpoint=CheckpointSettings(
            uri=checkpoint_uri, every_steps=c.every_steps, every_seconds=c.every_seconds, keep=c.keep
        ),
        output=OutputSettings(
            uri=o.uri,
            merge_lora=o.merge_lora,
            save_tokenizer=o.save_tokenizer,
            write_model_card=o.write_model_card,
        ),
        spec=wire,
        job_name=job_name,
    )


def load_settings(config_path: str | None, env: Mapping[str, str] | None = None) -> TrainerSettings:
    """The whole path from a file or the environment to typed settings."""
    environ = os.environ if env is None else env
    spec = validate_with_api(load_raw_document(config_path, environ))
    return settings_from_spec(spec, job_name=environ.get(ENV_JOB_NAME, DEFAULT_JOB_NAME))
