"""Model and tokenizer: fetch from model.uri, build for the task, freeze, and wrap with LoRA.

Models come from any storage URI (downloaded once into the local work directory and loaded from
there) or, for ``hf://org/name``, from the Hub by id when one is reachable; ``model.revision``
picks its branch, tag or commit. ``model.trustRemoteCode`` lets Python code shipped with the model
run (transformers ``trust_remote_code``): it runs inside the trainer's container with the pod's
sandbox (non-root, no Kubernetes credentials) but with the storage credentials the job was given,
so trust only code you would run yourself. Both reach every ``from_pretrained`` call. The task picks
the Auto class; freezing and LoRA are applied after loading so the same code serves full
fine-tuning, frozen lower layers and adapters. Which parameters count as the "classification head"
(for its own learning rate) is decided here too, by name, because it depends on how the model was
built.

QLoRA (``model.quantization``): the frozen base weights are loaded quantized by bitsandbytes through
transformers' ``BitsAndBytesConfig`` onto this rank's GPU, then peft's
``prepare_model_for_kbit_training`` readies them for adapters. It runs only where CUDA and
bitsandbytes exist: sharding.scaling_from_settings refuses every other worker with exit 78 before a
model is loaded. The mapping from the spec to the config (``bitsandbytes_options``) is pure so it is
tested without a GPU; the loading itself has not been run on a GPU by this project's tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import storage
from .errors import ConfigError
from .settings import ModelSettings, QuantizationSettings

log = logging.getLogger(__name__)

HEAD_NAME_PARTS = ("classifier", "score", "pre_classifier")
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_DROPOUT_ATTRIBUTES = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
)


def fetch_model_dir(uri: str, work_dir: Path) -> str:
    """A local directory (or Hub id) from which ``from_pretrained`` can load the model."""
    if storage.scheme_of(uri) == "hf":
        return uri.split("://", 1)[1]
    local = storage.local_path_of(uri)
    if local is not None:
        if not os.path.isdir(local):
            raise ConfigError(f"spec.model.uri: model directory {uri} does not exist (looked at {local})")
        return local
    target = work_dir / "model"
    if not storage.exists(uri):
        raise ConfigError(f"spec.model.uri: model {uri} does not exist; upload the model or fix the URI")
    files = storage.download_dir(uri, target)
    if not files:
        raise ConfigError(f"spec.model.uri: model {uri} holds no files")
    return str(target)


def pretrained_options(cfg: ModelSettings) -> dict[str, Any]:
    """Keyword arguments every ``from_pretrained`` call gets: the revision and the remote-code opt-in."""
    return {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}


def load_tokenizer(model_dir: str, cfg: ModelSettings) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, **pretrained_options(cfg))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"spec.model.uri: no usable tokenizer in {model_dir} ({exc})") from exc
    if cfg.task == "causal-lm" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _override_dropout(config: Any, dropout: float) -> None:
    for name in _DROPOUT_ATTRIBUTES:
        if getattr(config, name, None) is not None:
            setattr(config, name, dropout)


def bitsandbytes_options(q: QuantizationSettings, task: str) -> dict[str, Any]:
    """``BitsAndBytesConfig`` keyword arguments for ``model.quantization`` (pure).

    4 bits: the QLoRA recipe (data type, double quantization, compute dtype of the matmuls). 8 bits:
    LLM.int8, whose knobs the API does not expose. A sequence-classification head is new and
    trained in full (peft's modules_to_save), so it is kept out of quantization by name; for causal
    LMs transformers' own choice (the output embedding stays unquantized) applies.
    """
    options: dict[str, Any]
    if q.bits == 4:
        options = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": q.type,
            "bnb_4bit_use_double_quant": q.double_quant,
            "bnb_4bit_compute_dtype": COMPUTE_DTYPES[q.compute_dtype],
        }
    else:
        options = {"load_in_8bit": True}
    if task == "sequence-classification":
        options["llm_int8_skip_modules"] = list(HEAD_NAME_PARTS)
    return options


def _weight_options(cfg: ModelSettings, dtype: torch.dtype) -> dict[str, Any]:
    """How the weights are loaded: in ``dtype``, or quantized onto this rank's GPU (QLoRA)."""
    if cfg.quantization is None:
        return {"dtype": dtype}
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(**bitsandbytes_options(cfg.quantization, cfg.task)),
        # Unquantized modules (norms, head) in the compute dtype; prepare_model_for_kbit_training
        # then upcasts them to fp32 for stable training.
        "dtype": COMPUTE_DTYPES[cfg.quantization.compute_dtype],
        # Quantized weights cannot be moved after loading: place them on the rank's own device
        # (distributed.py set it from LOCAL_RANK).
        "device_map": {"": torch.cuda.current_device()},
    }


def load_model(
    cfg: ModelSettings, model_dir: str, label_names: list[str] | None, dtype: torch.dtype
) -> nn.Module:
    """The pretrained model for the task, with a fresh classification head when needed."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    options = pretrained_options(cfg)
    weights = _weight_options(cfg, dtype)
    try:
        config = AutoConfig.from_pretrained(model_dir, **options)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"spec.model.uri: no usable config.json in {model_dir} ({exc})") from exc
    if cfg.dropout is not None:
        _override_dropout(config, cfg.dropout)
    if cfg.task == "sequence-classification":
        names = label_names or [str(i) for i in range(cfg.num_labels or 2)]
        config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, config=config, ignore_mismatched_sizes=True, **weights, **options
        )
        if (
            getattr(model.config, "pad_token_id", None) is None
            and getattr(config, "eos_token_id", None) is not None
        ):
            model.config.pad_token_id = config.eos_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, config=config, **weights, **options)
    return model


def find_layer_stack(model: nn.Module) -> nn.ModuleList | None:
    """The model's list of transformer blocks (encoder.layer, transformer.h, model.layers...)."""
    best: nn.ModuleList | None = None
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and name.rsplit(".", 1)[-1]
            in (
                "layer",
                "layers",
                "h",
                "blocks",
            )
            and (best is None or len(module) > len(best))
        ):
            best = module
    return best


def freeze(model: nn.Module, embeddings: bool, layers: int) -> int:
    """Freeze the embeddings and the lowest ``layers`` blocks; returns the number of frozen tensors."""
    frozen = 0
    if embeddings:
        modules: list[nn.Module] = []
        input_embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if input_embeddings is not None:
            modules.append(input_embeddings)
        for name, module in model.named_modules():
            if name.rsplit(".", 1)[-1] in ("embeddings", "wpe", "embed_positions"):
                modules.append(module)
        for module in modules:
            for param in module.parameters():
                if param.requires_grad:
                    param.requires_grad = False
                    frozen += 1
    if layers > 0:
        stack = find_layer_stack(model)
        if stack is None:
            raise ConfigError(
                "spec.model.freeze.layers: this model has no recognisable stack of layers to freeze"
            )
        if layers > len(stack):
            raise ConfigError(
                f"spec.model.freeze.layers is {layers} but the model has only {len(stack)} layers"
            )
        for block in list(stack)[:layers]:
            for param in block.parameters():
                if param.requires_grad:
                    param.requires_grad = False
                    frozen += 1
    return frozen


def apply_lora(model: nn.Module, cfg: ModelSettings) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    assert cfg.lora is not None
    task_type = TaskType.SEQ_CLS if cfg.task == "sequence-classification" else TaskType.CAUSAL_LM
    targets: Any = cfg.lora.target_modules
    if isinstance(targets, tuple):
        targets = list(targets)
    lora_config = LoraConfig(
        task_type=task_type,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as exc:
        raise ConfigError(f"spec.model.lora.targetModules: {exc}") from exc


def is_head_parameter(name: str) -> bool:
    parts = name.split(".")
    return any(part in HEAD_NAME_PARTS for part in parts)


def head_parameter_names(names: Iterable[str]) -> set[str]:
    return {n for n in names if is_head_parameter(n)}


def build_model(
    cfg: ModelSettings,
    model_dir: str,
    label_names: list[str] | None,
    dtype: torch.dtype,
    *,
    gradient_checkpointing: bool,
) -> nn.Module:
    """Load, freeze, and wrap with LoRA as the settings say.

    ``gradient_checkpointing`` (training.gradientCheckpointing) matters only for quantized weights:
    peft must then make the frozen inputs carry gradients through the checkpointed layers.
    """
    model = load_model(cfg, model_dir, label_names, dtype)
    frozen = freeze(model, cfg.freeze_embeddings, cfg.freeze_layers)
    if frozen:
        log.info("froze parameter tensors", extra={"fields": {"frozen": frozen}})
    if cfg.quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        log.info(
            "loaded quantized base weights",
            extra={"fields": {"bits": cfg.quantization.bits, "type": cfg.quantization.type}},
        )
    if cfg.lora is not None:
        model = apply_lora(model, cfg)
    return model
