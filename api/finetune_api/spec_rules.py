"""Cross-field rules of the whole spec (they relate fields of different sections).

Each rule names the field a user should change. See rules.py for how a rule becomes both a Python
check and a CEL expression in the CRD.
"""

from typing import Any

from finetune_api.constants import CREDENTIAL_SCHEMES
from finetune_api.fields import uri_scheme
from finetune_api.rules import Rule
from finetune_api.scaling_rules import SCALING_RULES

_CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "f1_weighted")
_CREDENTIAL_RE = "^(" + "|".join(CREDENTIAL_SCHEMES) + ")://"
_CREDENTIAL_LIST = ", ".join(f"{s}://" for s in CREDENTIAL_SCHEMES)


def _is_classification(spec: Any) -> bool:
    return spec.model.task == "sequence-classification"


def storage_uris(spec: Any) -> list[str]:
    """Every storage URI the spec names (set ones only)."""
    candidates = [
        spec.model.uri,
        spec.dataset.train,
        spec.dataset.validation,
        spec.dataset.test,
        spec.checkpoint.uri,
        spec.output.uri,
    ]
    return [uri for uri in candidates if uri is not None]


def _uses_credentials(spec: Any) -> bool:
    return any(uri_scheme(uri) in CREDENTIAL_SCHEMES for uri in storage_uris(spec))


def _held_out(spec: Any) -> float:
    split = spec.dataset.split
    validation = 0.0 if spec.dataset.validation is not None else split.validation
    test = 0.0 if spec.dataset.test is not None else split.test
    return validation + test


SPEC_RULES: tuple[Rule, ...] = (
    Rule(
        field="model.numLabels",
        message="numLabels is required when task is sequence-classification; set the number of classes",
        cel="self.model.task != 'sequence-classification' || has(self.model.numLabels)",
        holds=lambda s: not _is_classification(s) or s.model.num_labels is not None,
    ),
    Rule(
        field="model.numLabels",
        message="numLabels is refused when task is causal-lm; remove it",
        cel="self.model.task != 'causal-lm' || !has(self.model.numLabels)",
        holds=lambda s: s.model.task != "causal-lm" or s.model.num_labels is None,
    ),
    Rule(
        field="model.labels",
        message="labels must list exactly numLabels class names (sequence-classification only)",
        cel=(
            "!has(self.model.labels) || (has(self.model.numLabels) && self.model.labels.size() == "
            "self.model.numLabels)"
        ),
        holds=lambda s: (
            s.model.labels is None
            or (s.model.num_labels is not None and len(s.model.labels) == s.model.num_labels)
        ),
    ),
    Rule(
        field="model.revision",
        message="revision applies only to hf:// model URIs; remove it or use an hf:// uri",
        cel="!has(self.model.revision) || self.model.uri.startsWith('hf://')",
        holds=lambda s: s.model.revision is None or uri_scheme(s.model.uri) == "hf",
    ),
    Rule(
        field="model.lora",
        message="lora already freezes the base model; remove model.freeze or model.lora",
        cel="!has(self.model.lora) || (self.model.freeze.layers == 0 && !self.model.freeze.embeddings)",
        holds=lambda s: (
            s.model.lora is None or (s.model.freeze.layers == 0 and not s.model.freeze.embeddings)
        ),
    ),
    Rule(
        field="dataset.split",
        message="validation plus test fractions must be below 1 so that data is left to train on",
        cel=(
            "(has(self.dataset.validation) ? 0.0 : self.dataset.split.validation)"
            " + (has(self.dataset.test) ? 0.0 : self.dataset.split.test) < 1.0"
        ),
        holds=lambda s: _held_out(s) < 1.0,
    ),
    Rule(
        field="storage.secretRef",
        message=(
            f"secretRef is required because a URI uses {_CREDENTIAL_LIST}; name a Secret with the storage "
            f"credentials"
        ),
        cel=(
            "has(self.storage.secretRef) || ("
            f"!self.model.uri.matches('{_CREDENTIAL_RE}')"
            f" && !self.dataset.train.matches('{_CREDENTIAL_RE}')"
            f" && !self.output.uri.matches('{_CREDENTIAL_RE}')"
            f" && (!has(self.dataset.validation) || !self.dataset.validation.matches('{_CREDENTIAL_RE}'))"
            f" && (!has(self.dataset.test) || !self.dataset.test.matches('{_CREDENTIAL_RE}'))"
            f" && (!has(self.checkpoint.uri) || !self.checkpoint.uri.matches('{_CREDENTIAL_RE}')))"
        ),
        holds=lambda s: s.storage.secret_ref is not None or not _uses_credentials(s),
    ),
    Rule(
        field="checkpoint.uri",
        message="checkpoints cannot be written to hf://; use s3://, gs://, az://, file:// or pvc://",
        cel="!has(self.checkpoint.uri) || !self.checkpoint.uri.startsWith('hf://')",
        holds=lambda s: s.checkpoint.uri is None or uri_scheme(s.checkpoint.uri) != "hf",
    ),
    Rule(
        field="checkpoint.uri",
        message="must differ from output.uri; leave it unset to use <output.uri>/checkpoints",
        cel="!has(self.checkpoint.uri) || self.checkpoint.uri != self.output.uri",
        holds=lambda s: s.checkpoint.uri is None or s.checkpoint.uri != s.output.uri,
    ),
    Rule(
        field="training.evaluation.everySteps",
        message="everySteps is required when strategy is steps",
        cel="self.training.evaluation.strategy != 'steps' || has(self.training.evaluation.everySteps)",
        holds=lambda s: (
            s.training.evaluation.strategy != "steps" or s.training.evaluation.every_steps is not None
        ),
    ),
    Rule(
        field="training.evaluation.everySteps",
        message="everySteps applies only to strategy steps; set strategy: steps or remove everySteps",
        cel="!has(self.training.evaluation.everySteps) || self.training.evaluation.strategy == 'steps'",
        holds=lambda s: (
            s.training.evaluation.every_steps is None or s.training.evaluation.strategy == "steps"
        ),
    ),
    Rule(
        field="training.evaluation.strategy",
        message=(
            "evaluation needs validation data; set dataset.validation or dataset.split.validation above 0, "
            "or set strategy: no"
        ),
        cel=(
            "self.training.evaluation.strategy == 'no' || has(self.dataset.validation)"
            " || self.dataset.split.validation > 0.0"
        ),
        holds=lambda s: (
            s.training.evaluation.strategy == "no"
            or s.dataset.validation is not None
            or s.dataset.split.validation > 0.0
        ),
    ),
    Rule(
        field="training.evaluation.earlyStopping",
        message="early stopping needs evaluation; set evaluation.strategy to steps or epoch",
        cel="!has(self.training.evaluation.earlyStopping) || self.training.evaluation.strategy != 'no'",
        holds=lambda s: (
            s.training.evaluation.early_stopping is None or s.training.evaluation.strategy != "no"
        ),
    ),
    Rule(
        field="training.evaluation.metric",
        message=(
            "accuracy, f1_macro and f1_weighted need task sequence-classification; use loss or perplexity"
        ),
        cel=(
            "!(self.training.evaluation.metric in ['accuracy', 'f1_macro', 'f1_weighted'])"
            " || self.model.task == 'sequence-classification'"
        ),
        holds=lambda s: s.training.evaluation.metric not in _CLASSIFICATION_METRICS or _is_classification(s),
    ),
    Rule(
        field="training.evaluation.metric",
        message="perplexity needs task causal-lm; use loss, accuracy, f1_macro or f1_weighted",
        cel="self.training.evaluation.metric != 'perplexity' || self.model.task == 'causal-lm'",
        holds=lambda s: s.training.evaluation.metric != "perplexity" or s.model.task == "causal-lm",
    ),
    Rule(
        field="training.warmupRatio",
        message="set either warmupSteps or warmupRatio, not both",
        cel="self.training.warmupSteps == 0 || self.training.warmupRatio == 0.0",
        holds=lambda s: s.training.warmup_steps == 0 or s.training.warmup_ratio == 0.0,
    ),
    Rule(
        field="training.headLearningRate",
        message="headLearningRate applies only to task sequence-classification; remove it",
        cel="!has(self.training.headLearningRate) || self.model.task == 'sequence-classification'",
        holds=lambda s: s.training.head_learning_rate is None or _is_classification(s),
    ),
    Rule(
        field="training.classWeights",
        message="class weights apply only to task sequence-classification; set classWeights: none",
        cel="self.training.classWeights == 'none' || self.model.task == 'sequence-classification'",
        holds=lambda s: s.training.class_weights == "none" or _is_classification(s),
    ),
    Rule(
        field="training.classWeightValues",
        message="classWeights explicit needs classWeightValues with exactly numLabels entries",
        cel=(
            "self.training.classWeights != 'explicit' || (has(self.training.classWeightValues)"
            " && has(self.model.numLabels) && self.training.classWeightValues.size() == self.model.numLabels)"
        ),
        holds=lambda s: (
            s.training.class_weights != "explicit"
            or (
                s.training.class_weight_values is not None
                and s.model.num_labels is not None
                and len(s.training.class_weight_values) == s.model.num_labels
            )
        ),
    ),
    Rule(
        field="training.classWeightValues",
        message="classWeightValues applies only with classWeights: explicit",
        cel="!has(self.training.classWeightValues) || self.training.classWeights == 'explicit'",
        holds=lambda s: s.training.class_weight_values is None or s.training.class_weights == "explicit",
    ),
    Rule(
        field="training.precision",
        message="bf16 and fp16 need GPUs (resources.gpusPerWorker above 0); use auto or fp32 on CPU",
        cel="self.training.precision in ['auto', 'fp32'] || self.resources.gpusPerWorker > 0",
        holds=lambda s: s.training.precision in ("auto", "fp32") or s.resources.gpus_per_worker > 0,
    ),
    *SCALING_RULES,
)
