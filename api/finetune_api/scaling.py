"""Spec sections for models too large for plain data parallelism: sharding (FSDP) and QLoRA.

`training.distribution` says how the model is spread over the ranks: DDP keeps a full copy of
weights, gradients and optimizer state on every rank; FSDP shards all three (torch FSDP2 through
HF Trainer/accelerate). Only the few knobs users actually set are exposed; activation
checkpointing reuses `training.gradientCheckpointing`. `model.quantization` loads the frozen base
weights in 4 or 8 bits (bitsandbytes) for QLoRA; it needs LoRA adapters and GPUs, which the
spec-level rules in spec_rules.py enforce at apply time.
"""

from typing import Annotated, Literal

from pydantic import Field

from finetune_api.base import ApiModel
from finetune_api.rules import Rule

Strategy = Literal["auto", "ddp", "fsdp"]
Sharding = Literal["full", "hybrid", "grad-op"]
QuantizationBits = Literal[4, 8]
QuantizationType = Literal["nf4", "fp4"]
ComputeDtype = Literal["bf16", "fp16", "fp32"]

LayerClassName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# `auto` switches to FSDP when a rank's full training state would take more than this share of
# the memory one rank has (GPU memory, or host memory divided by the ranks of a worker on CPU).
AUTO_FSDP_MEMORY_SHARE = 0.5


class Distribution(ApiModel):
    """How the model is spread over the ranks: full copies (DDP) or shards (FSDP)."""

    RULES = (
        Rule(
            field="strategy",
            message=(
                "sharding, cpuOffload and autoWrapLayers apply only to strategy fsdp or auto; "
                "remove them or set strategy: fsdp"
            ),
            # has(): the API server checks the section's `default: {}` before nested defaults apply.
            cel=(
                "!has(self.strategy) || self.strategy != 'ddp' || (self.sharding == 'full' && "
                "!self.cpuOffload && !has(self.autoWrapLayers))"
            ),
            holds=lambda d: (
                d.strategy != "ddp"
                or (d.sharding == "full" and not d.cpu_offload and d.auto_wrap_layers is None)
            ),
        ),
    )

    strategy: Strategy = Field(
        default="auto",
        description=(
            "ddp: every rank holds the whole model, its gradients and optimizer state (fastest while "
            "they fit). fsdp: each of the N ranks holds 1/N of them (PyTorch FSDP2), so models N times "
            "larger fit. auto: fsdp when more than one rank trains and one rank's full training state "
            "(16 bytes per trainable parameter plus the frozen weights) would exceed half the memory "
            "of one rank, ddp otherwise."
        ),
    )
    sharding: Sharding = Field(
        default="full",
        description=(
            "FSDP only. full: parameters, gradients and optimizer state are sharded over all ranks "
            "and parameters are re-gathered for the backward pass (least memory). grad-op: parameters "
            "stay gathered between forward and backward (less communication, more memory). hybrid: "
            "shard inside each worker and replicate across workers (cross-worker traffic is only the "
            "gradient all-reduce); needs resources.gpusPerWorker above 1."
        ),
    )
    cpu_offload: bool = Field(
        default=False,
        description=(
            "FSDP only. Keep the sharded parameters, gradients and optimizer state in host memory and "
            "move them to the GPU only for compute (fits larger models, much slower)."
        ),
    )
    auto_wrap_layers: list[LayerClassName] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description=(
            "FSDP only. Class names of the layers that become one FSDP unit each, e.g. "
            "[LlamaDecoderLayer]. Absent uses the model's own list (transformers `_no_split_modules`: "
            "its decoder or encoder layer class)."
        ),
    )


class Quantization(ApiModel):
    """QLoRA: frozen base weights loaded quantized (bitsandbytes); LoRA adapters train in full precision."""

    bits: QuantizationBits = Field(
        default=4, description="Bits per frozen base weight: 4 (QLoRA, NF4/FP4) or 8 (LLM.int8)."
    )
    type: QuantizationType = Field(
        default="nf4",
        description="4-bit data type: nf4 (normal float, the QLoRA default) or fp4. Ignored for 8 bits.",
    )
    double_quant: bool = Field(
        default=True,
        description="Quantize the quantization constants too (saves about 0.4 bits per weight). 4 bits only.",
    )
    compute_dtype: ComputeDtype = Field(
        default="bf16",
        description="Data type of the matrix multiplications with the dequantized weights.",
    )
