"""Spec sections that say *what* is learned: the model, the data and the training hyperparameters.

Field names follow HF transformers / peft where one exists (learningRate ~ learning_rate,
gradientAccumulationSteps ~ gradient_accumulation_steps, lora.r/alpha/dropout ~ LoraConfig), so a
user of those libraries recognises every knob. Defaults are safe on a CPU (precision auto, small
batches) and sensible on a GPU.
"""

from typing import Annotated, Literal

from pydantic import Field

from finetune_api.base import ApiModel
from finetune_api.fields import ShortText, StorageUri, UniqueNames
from finetune_api.rules import Rule
from finetune_api.scaling import Distribution, Quantization

Task = Literal["sequence-classification", "causal-lm"]
DataFormat = Literal["auto", "jsonl", "csv", "parquet"]
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
]
Optimizer = Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
ClassWeights = Literal["none", "auto", "explicit"]
EvaluationStrategy = Literal["steps", "epoch", "no"]
EvaluationMetric = Literal["loss", "accuracy", "f1_macro", "f1_weighted", "perplexity"]
LoraBias = Literal["none", "all", "lora_only"]

FieldName = Annotated[str, Field(min_length=1, max_length=128)]


def section(cls: type[ApiModel], description: str):
    """A nested section whose every field has a default: absent means "all defaults".

    The CRD gets `default: {}` so the API server fills in the nested defaults too.
    """
    return Field(default_factory=cls, description=description, json_schema_extra={"default": {}})


class Freeze(ApiModel):
    """Which parts of the pretrained model keep their weights (no gradient) during training."""

    embeddings: bool = Field(
        default=False, description="Freeze the embedding layer (token, position and type embeddings)."
    )
    layers: int = Field(
        default=0,
        ge=0,
        le=1000,
        description=(
            "Freeze this many of the lowest transformer layers (counted from the input). 0 trains all "
            "layers. Refused when larger than the model's layer count at start-up."
        ),
    )


class Lora(ApiModel):
    """Low-rank adaptation (peft LoraConfig): the base model is frozen and small adapters are trained."""

    r: int = Field(default=8, ge=1, le=1024, description="Rank of the adapter matrices (peft `r`).")
    alpha: int = Field(
        default=16,
        ge=1,
        le=4096,
        description="Scaling numerator (peft `lora_alpha`); effective scale is alpha/r.",
    )
    dropout: float = Field(
        default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input (peft `lora_dropout`)."
    )
    RULES = (
        Rule(
            field="targetModules",
            message="all-linear must be the only entry; list module names or use all-linear alone",
            cel="!('all-linear' in self.targetModules) || self.targetModules.size() == 1",
            holds=lambda lora: "all-linear" not in lora.target_modules or len(lora.target_modules) == 1,
        ),
    )

    target_modules: UniqueNames = Field(
        default=["all-linear"],
        min_length=1,
        max_length=64,
        description=(
            "Names (or name suffixes) of the modules that get adapters, e.g. [query, value]. The single "
            "entry all-linear adapts every linear layer except the output head."
        ),
    )
    bias: LoraBias = Field(default="none", description="Which biases are trained (peft `bias`).")


class Model(ApiModel):
    """The pretrained model to start from and how it is adapted."""

    uri: StorageUri = Field(
        description=(
            "Where the pretrained model lives: a directory in HF `save_pretrained` layout (config, weights, "
            "tokenizer) at s3://, gs://, az://, file:// or pvc://<claim>/<path>, or hf://<org>/<name> "
            "on the Hub."
        )
    )
    task: Task = Field(
        description=(
            "What the model learns: sequence-classification (a label per text; needs numLabels) or causal-lm "
            "(instruction tuning on prompt/response pairs; loss on the response only)."
        )
    )
    num_labels: int | None = Field(
        default=None,
        ge=2,
        le=100000,
        description="Number of classes. Required for sequence-classification, refused for causal-lm.",
    )
    labels: UniqueNames | None = Field(
        default=None,
        min_length=2,
        max_length=1000,
        description=(
            "Class names in id order (optional). When set its length must equal numLabels; dataset "
            "labels may "
            "then be these names instead of ids. Stored with the trained model as id2label."
        ),
    )
    revision: ShortText | None = Field(
        default=None, description="Branch, tag or commit of an hf:// model. Refused for other schemes."
    )
    freeze: Freeze = section(Freeze, "Layers that keep their pretrained weights. Not combinable with lora.")
    lora: Lora | None = Field(
        default=None,
        description="Train LoRA adapters instead of all weights. Absent means full fine-tuning.",
    )
    dropout: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="Override the model's hidden dropout probability. Absent keeps the model's own.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow model code shipped with the checkpoint to run (transformers trust_remote_code).",
    )
    quantization: Quantization | None = Field(
        default=None,
        description=(
            "Load the frozen base weights quantized to 4 or 8 bits (QLoRA, bitsandbytes). Requires lora and "
            "GPUs. Absent loads the weights in the training precision."
        ),
    )


class Split(ApiModel):
    """How the train file is divided when separate validation or test files are not given."""

    validation: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description=(
            "Fraction of the train data held out for validation; used only when dataset.validation is unset."
        ),
    )
    test: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "Fraction of the train data held out for a final test; used only when dataset.test is unset."
        ),
    )
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed of the shuffle before splitting.")


class Dataset(ApiModel):
    """The training data: files at storage URIs and the record fields to read."""

    train: StorageUri = Field(description="Training data file (or directory of files) in the given format.")
    validation: StorageUri | None = Field(
        default=None, description="Validation data. When unset, split.validation of train is held out."
    )
    test: StorageUri | None = Field(
        default=None,
        description="Test data, evaluated once after training. When unset, split.test is held out.",
    )
    format: DataFormat = Field(
        default="auto",
        description="File format; auto picks from the extension (.jsonl/.json, .csv, .parquet).",
    )
    text_field: FieldName = Field(
        default="text", description="Record field with the input text (sequence-classification)."
    )
    text_pair_field: FieldName | None = Field(
        default=None, description="Optional second text field for sentence-pair classification."
    )
    label_field: FieldName = Field(
        default="label",
        description="Record field with the label: an id in [0, numLabels) or a name from model.labels.",
    )
    prompt_field: FieldName = Field(default="prompt", description="Record field with the prompt (causal-lm).")
    response_field: FieldName = Field(
        default="response",
        description="Record field with the response the model learns to produce (causal-lm).",
    )
    max_length: int = Field(
        default=256,
        ge=8,
        le=131072,
        description="Tokens per example after truncation (prompt plus response for causal-lm).",
    )
    split: Split = section(Split, "Held-out fractions of the train data.")


class EarlyStopping(ApiModel):
    """Stop when the evaluation metric has not improved for a number of evaluations."""

    patience: int = Field(
        default=3, ge=1, le=1000, description="Evaluations without improvement before stopping."
    )
    threshold: float = Field(
        default=0.0, ge=0.0, description="Minimum change of the metric that counts as an improvement."
    )


class Evaluation(ApiModel):
    """When the model is evaluated on the validation data and which metric picks the best checkpoint."""

    strategy: EvaluationStrategy = Field(
        default="epoch",
        description="steps: every everySteps optimizer steps; epoch: after each epoch; no: never.",
    )
    every_steps: int | None = Field(
        default=None,
        ge=1,
        le=10**9,
        description="Evaluation interval in optimizer steps. Required for strategy steps.",
    )
    metric: EvaluationMetric = Field(
        default="loss",
        description=(
            "Metric that selects the best model and drives early stopping. accuracy, f1_macro and "
            "f1_weighted "
            "need sequence-classification; perplexity needs causal-lm."
        ),
    )
    greater_is_better: bool | None = Field(
        default=None,
        description=(
            "Whether a larger metric is better. Absent: false for loss and perplexity, true otherwise."
        ),
    )
    early_stopping: EarlyStopping | None = Field(
        default=None,
        description="Stop early when the metric stops improving. Absent disables early stopping.",
    )

    @property
    def resolved_greater_is_better(self) -> bool:
        """greaterIsBetter, or its documented default: false for loss and perplexity, true otherwise."""
        if self.greater_is_better is not None:
            return self.greater_is_better
        return self.metric not in ("loss", "perplexity")


class Training(ApiModel):
    """Optimisation hyperparameters (HF TrainingArguments)."""

    epochs: int = Field(
        default=3, ge=1, le=10000, description="Passes over the training data (num_train_epochs)."
    )
    max_steps: int | None = Field(
        default=None,
        ge=1,
        le=10**9,
        description="Stop after this many optimizer steps; overrides epochs when set.",
    )
    learning_rate: float = Field(default=2e-5, gt=0.0, le=10.0, description="Peak learning rate of the body.")
    head_learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description=(
            "Learning rate of the freshly initialised classification head; absent uses learningRate. "
            "sequence-classification only."
        ),
    )
    batch_size_per_device: int = Field(
        default=8,
        ge=1,
        le=65536,
        description="Training examples per device per step (per_device_train_batch_size).",
    )
    eval_batch_size_per_device: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Evaluation batch per device; absent uses batchSizePerDevice.",
    )
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, le=65536, description="Micro-batches summed before each optimizer step."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass to save memory (slower)."
    )
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        default=0, ge=0, le=10**9, description="Linear warm-up steps. Exclusive with warmupRatio."
    )
    warmup_ratio: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Warm-up as a fraction of total steps. Exclusive with warmupSteps.",
    )
    scheduler: Scheduler = Field(
        default="linear", description="Learning-rate schedule after warm-up (lr_scheduler_type)."
    )
    optimizer: Optimizer = Field(
        default="adamw_torch_fused",
        description="Optimizer (HF `optim`). The default is HF's: AdamW with torch's fused kernel "
        "(CPU and GPU); `adamw_torch` is the same update through the slower per-tensor loop.",
    )
    max_grad_norm: float = Field(
        default=1.0, ge=0.0, description="Gradient clipping norm; 0 disables clipping."
    )
    precision: Precision = Field(
        default="auto",
        description=(
            "Numeric precision: auto picks bf16 on a GPU that supports it, else fp16 on a GPU, fp32 on CPU."
        ),
    )
    seed: int = Field(
        default=42, ge=0, le=2**31 - 1, description="Seed for initialisation, shuffling and dropout."
    )
    class_weights: ClassWeights = Field(
        default="none",
        description=(
            "Loss weights per class for imbalanced data: none; auto (inverse class frequency of the "
            "train split); "
            "explicit (classWeightValues). sequence-classification only."
        ),
    )
    class_weight_values: list[Annotated[float, Field(ge=0.0, le=1e6)]] | None = Field(
        default=None,
        max_length=10000,  # keeps the largest spec well inside a ConfigMap (1 MiB) and etcd's limit
        description=(
            "One non-negative weight per class, in label-id order. Required for (and only with) "
            "classWeights explicit."
        ),
    )
    logging_steps: int = Field(
        default=10, ge=1, le=10**9, description="Optimizer steps between loss log lines and metrics updates."
    )
    evaluation: Evaluation = section(Evaluation, "Evaluation schedule, best-model metric and early stopping.")
    distribution: Distribution = section(
        Distribution, "How the model is spread over the ranks: full copies (DDP) or shards (FSDP)."
    )

    @property
    def resolved_eval_batch_size_per_device(self) -> int:
        """evalBatchSizePerDevice, or its documented default: batchSizePerDevice."""
        if self.eval_batch_size_per_device is not None:
            return self.eval_batch_size_per_device
        return self.batch_size_per_device
