"""DDP or FSDP: which one a job trains with, and the few hooks FSDP needs around HF Trainer.

- **Which strategy.** ``training.distribution.strategy`` ddp/fsdp is taken as asked; ``auto``
  measures the built model and picks FSDP when more than one rank trains and one rank's full
  training state (``training_state_bytes``) would take more than half of one rank's memory
 (``AUTO_FSDP_MEMORY_SHARE``, documented with the API field). One rank alone cannot shard, so fsdp with a
  world size of 1 trains unsharded (logged).
- **FSDP is HF's.** The plan becomes ``fsdp``/``fsdp_config`` (and, for hybrid sharding, an
  accelerate ``ParallelismConfig``) in TrainingArguments: accelerate applies torch FSDP2
  ``fully_shard`` per layer, and HF Trainer saves sharded checkpoints with
  torch.distributed.checkpoint (``SHARDED_STATE_DICT``). The one thing we add is
  ``enable_fsdp_on_cpu``: accelerate switches FSDP on only for GPU-like devices, while torch's FSDP2
  runs fine on CPU with gloo — which is what makes the path testable without a GPU.
- **The published model** is gathered from the shards on every rank into one full state dict on
  rank 0 (``publishable_model``) and loaded into an unsharded copy, so ``output.save_model`` writes
  a normal ``save_pretrained`` directory (LoRA merged as usual). Trade-off: rank 0's host memory
  must hold the model twice for a moment.
- **QLoRA** needs CUDA and bitsandbytes; without them the job ends with exit 78 naming the field
  (modeling.py loads the quantized weights where both exist). ``auto`` never picks FSDP for a
  quantized model: the API refuses ``fsdp`` with quantization, and the adapters are small.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from finetune_api.scaling import AUTO_FSDP_MEMORY_SHARE

from .distributed import WorldInfo
from .errors import ConfigError
from .settings import DistributionSettings, QuantizationSettings, TrainerSettings

log = logging.getLogger(__name__)

# glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
M_MMAP_THRESHOLD = -3
# Allocations from this size up are served by mmap and given back to the kernel when freed.
CPU_FSDP_MMAP_THRESHOLD_BYTES = 1 << 20
TRAINABLE_BYTES_PER_PARAMETER = 16  # weight + gradient + two Adam moments in fp32 (or bf16 + fp32 master)


@dataclass(frozen=True)
class ScalingSettings:
    """The two sections that decide where the training state lives, as the trainer's settings hold them."""

    distribution: DistributionSettings
    quantization: QuantizationSettings | None


@dataclass(frozen=True)
class ShardingPlan:
    """What this run does: ``strategy`` is ddp or fsdp, decided once for all ranks."""

    strategy: str
    sharding: str
    cpu_offload: bool
    auto_wrap_layers: tuple[str, ...] | None
    reason: str
    replicas: int  # hybrid: number of workers, each holding one full set of shards; otherwise 1

    @property
    def is_fsdp(self) -> bool:
        return self.strategy == "fsdp"


def scaling_from_settings(settings: TrainerSettings, cuda: bool, bitsandbytes: bool) -> ScalingSettings:
    """Both sections from the typed settings (API defaults, nothing re-declared); refuse QLoRA where
    it cannot run (exit 78) rather than silently training unquantized."""
    quantization = settings.model.quantization
    if quantization is not None:
        if not cuda:
            raise ConfigError(
                "spec.model.quantization: QLoRA needs a CUDA GPU (bitsandbytes has no CPU kernels) and this "
                "worker has none; request GPUs with spec.resources.gpusPerWorker or remove model.quantization"
            )
        if not bitsandbytes:
            raise ConfigError(
                "spec.model.quantization: the trainer image lacks bitsandbytes, which QLoRA needs; use an "
                "image with bitsandbytes installed (spec.image) or remove model.quantization"
            )
    return ScalingSettings(settings.training.distribution, quantization)


def bitsandbytes_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def training_state_bytes(total_parameters: int, trainable_parameters: int, weight_bytes: int = 4) -> int:
    """One rank's memory for weights, gradients and Adam state without sharding (activations aside).

    Frozen parameters cost their weights only; trainable ones cost 16 bytes each (see
    docs/trainer.md, "DDP, FSDP or QLoRA").
    """
    frozen = max(total_parameters - trainable_parameters, 0)
    return frozen * weight_bytes + trainable_parameters * TRAINABLE_BYTES_PER_PARAMETER


def resolve_strategy(
    requested: str, world_size: int, state_bytes: int, rank_memory_bytes: int, quantized: bool
) -> tuple[str, str]:
    """(ddp|fsdp, why) for a requested strategy (pure)."""
    if world_size <= 1:
        if requested == "fsdp":
            return "ddp", "one rank cannot shard: training unsharded"
        return "ddp", "one rank"
    if requested == "fsdp":
        return "fsdp", "requested"
    if requested == "ddp":
        return "ddp", "requested"
    if quantized:
        return "ddp", "auto: quantized base weights are not sharded (QLoRA adapters are small)"
    budget = int(rank_memory_bytes * AUTO_FSDP_MEMORY_SHARE)
    if state_bytes > budget:
        return "fsdp", f"auto: training state of {state_bytes} bytes exceeds {budget} (half a rank's memory)"
    return "ddp", f"auto: training state of {state_bytes} bytes fits in {budget} (half a rank's memory)"


def rank_memory_bytes(cuda: bool, local_world_size: int) -> int:
    """Memory one rank may use: its GPU's, or the host's divided among the worker's ranks."""
    if cuda:
        import torch

        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(pages // max(local_world_size, 1))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts; shared (tied) tensors count once."""
    seen: set[int] = set()
    total = trainable = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return total, trainable


def plan_distribution(
    scaling: ScalingSettings, world: WorldInfo, model: nn.Module, cuda: bool, local_world_size: int
) -> ShardingPlan:
    """Decide DDP or FSDP for this run (the same on every rank: same model, same world)."""
    d = scaling.distribution
    total, trainable = count_parameters(model)
    state = training_state_bytes(total, trainable)
    memory = rank_memory_bytes(cuda, local_world_size) if d.strategy == "auto" else 0
    strategy, reason = resolve_strategy(
        d.strategy, world.world_size, state, memory, scaling.quantization is not None
    )
    replicas = 1
    if strategy == "fsdp" and d.sharding == "hybrid":
        replicas = hybrid_replicas(world.world_size, local_world_size)
    layers = d.auto_wrap_layers
    if strategy == "fsdp" and layers is None:
        layers = default_wrap_layers(model)
    plan = ShardingPlan(
        strategy=strategy,
        sharding=d.sharding,
        cpu_offload=d.cpu_offload,
        auto_wrap_layers=layers,
        reason=reason,
        replicas=replicas,
    )
    log.info(
        "distribution strategy",
        extra={
            "fields": {
                "strategy": plan.strategy,
                "sharding": plan.sharding if plan.is_fsdp else None,
                "auto_wrap_layers": list(plan.auto_wrap_layers or ()) if plan.is_fsdp else None,
                "reason": reason,
                "parameters": total,
                "trainable_parameters": trainable,
            }
        },
    )
    return plan


def default_wrap_layers(model: nn.Module) -> tuple[str, ...] | None:
    """The model's own ``_no_split_modules`` less any class that holds the input embeddings.

    Why: after the auto-wrap pass accelerate (1.15) shards the input embedding as a unit of its own
    and only skips it when the embedding *itself* was wrapped; when an auto-wrapped class holds it
    (BERT's ``BertEmbeddings``), ``fully_shard`` meets already-sharded parameters and fails
    (found by the BERT FSDP test). Leaving that class out gives the embedding its own unit and
    leaves the rest of that class (position embeddings, norm) to the root unit. None: the model
    names no classes (accelerate's own fallback applies).
    """
    names = getattr(model, "_no_split_modules", None)
    if not names:
        return None
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    holders = {
        type(module).__name__
        for module in model.modules()
        if embedding is not None and module is not embedding and any(m is embedding for m in module.modules())
    }
    kept = tuple(sorted(str(name) for name in names if name not in holders))
    return kept or None


def return_freed_buffers_to_the_kernel(plan: ShardingPlan, cuda: bool) -> bool:
    """On a CPU FSDP gang, make glibc hand large freed blocks back to the kernel; True when set.

    Why: FSDP2 allocates and frees a full layer's parameters and gradients at every all-gather and
    reduce-scatter. glibc raises its mmap threshold after the first such block is freed, so later
    ones come from the heap and stay in the process after being freed: measured on 2 CPU ranks
    (57 M parameters), FSDP's peak RSS was then as high as DDP's. With a fixed threshold (which
    also stops the dynamic adjustment) the same run peaked about 570 MiB lower per rank
    (docs/benchmarks.md). GPU memory is managed by torch's caching allocator, so nothing changes
    there; other C libraries than glibc are left alone.
    """
    if not plan.is_fsdp or cuda:
        return False
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, CPU_FSDP_MMAP_THRESHOLD_BYTES))
    log.info("malloc mmap threshold", extra={"fields": {"bytes": CPU_FSDP_MMAP_THRESHOLD_BYTES, "set": ok}})
    return ok


def hybrid_replicas(world_size: int, local_world_size: int) -> int:
    """Replica groups of hybrid sharding: one per worker (shards live inside a worker)."""
    if local_world_size < 1 or world_size % local_world_size:
        raise ConfigError(
            f"spec.training.distribution.sharding: hybrid needs the same number of ranks on every worker "
            f"(world size {world_size}, {local_world_size} on this worker)"
        )
    return world_size // local_world_size


def fsdp_config(plan: ShardingPlan, activation_checkpointing: bool) -> dict[str, Any]:
    """HF TrainingArguments.fsdp_config for a plan (pure)."""
    config: dict[str, Any] = {
        "version": 2,
        "state_dict_type": "SHARDED_STATE_DICT",
        "reshard_after_forward": plan.sharding != "grad-op",
        "cpu_offload": plan.cpu_offload,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "activation_checkpointing": activation_checkpointing,
    }
    if plan.auto_wrap_layers:
        config["transformer_layer_cls_to_wrap"] = list(plan.auto_wrap_layers)
    return config


def training_arguments(plan: ShardingPlan | None, gradient_checkpointing: bool) -> dict[str, Any]:
    """Extra TrainingArguments for the plan; FSDP does activation checkpointing itself."""
    if plan is None or not plan.is_fsdp:
        return {"activation_checkpointing": gradient_checkpointing or None}
    extra: dict[str, Any] = {
        "fsdp": True,
        "fsdp_config": fsdp_config(plan, gradient_checkpointing),
        "activation_checkpointing": None,
    }
    if plan.sharding == "hybrid" and plan.replicas > 1:
        from accelerate.parallelism_config import ParallelismConfig

        world = int(os.environ.get("WORLD_SIZE", "1"))
        extra["parallelism_config"] = ParallelismConfig(
            dp_replicate_size=plan.replicas, dp_shard_size=world // plan.replicas
        )
    return extra


def enable_fsdp_on_cpu(trainer: Any) -> None:
    """Turn accelerate's FSDP path on for a CPU gang (called right after the Accelerator is built).

    accelerate's state picks FSDP only for GPU-like device types and leaves a CPU gang on plain
    multi-CPU data parallelism, silently ignoring the plugin. torch's FSDP2 (``fully_shard``) and
    torch.distributed.checkpoint work on CPU with gloo, so we promote the state to FSDP with the
    plugin TrainingArguments built: everything after that is accelerate's and HF's own FSDP2 code.
    """
    plugin_args = getattr(trainer.args, "fsdp_plugin_args", None)
    if not plugin_args or getattr(trainer, "is_fsdp_enabled", False):
        return
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**plugin_args)
    trainer.is_fsdp_enabled = True


def publishable_model(
    trainer: Any, plan: ShardingPlan, world: WorldInfo, rebuild: Callable[[], nn.Module]
) -> nn.Module | None:
    """The model rank 0 publishes; a collective under FSDP, so every rank must call it.

    DDP: the trained model itself. FSDP: the full state dict is gathered from the shards into rank
    0's host memory and loaded into an unsharded copy built by ``rebuild`` (same architecture, head
    and LoRA wrapping as the trained model); other ranks get None.
    """
    if not plan.is_fsdp:
        return trainer.model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if optimizer is not None:  # training is over: free Adam's shards before the full weights arrive
        optimizer.state.clear()
    full = get_model_state_dict(
        trainer.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if not world.is_main:
        return None
    model = rebuild()
    missing, unexpected = model.load_state_dict(full, strict=False)
    if unexpected or [k for k in missing if k in dict(model.named_parameters())]:
        raise RuntimeError(
            f"gathered FSDP state dict does not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model
