"""Cross-field rules of `training.distribution` and `model.quantization` (see scaling.py).

They relate these sections to `model.lora` and `resources`, so they live on the spec (spec_rules.py
appends them); each names the field a user should change.
"""

from finetune_api.rules import Rule

SCALING_RULES: tuple[Rule, ...] = (
    Rule(
        field="model.quantization",
        message="quantization (QLoRA) trains LoRA adapters on frozen quantized weights; add model.lora",
        cel="!has(self.model.quantization) || has(self.model.lora)",
        holds=lambda s: s.model.quantization is None or s.model.lora is not None,
    ),
    Rule(
        field="model.quantization",
        message=(
            "quantization needs GPUs (bitsandbytes has no CPU kernels): set resources.gpusPerWorker above 0 "
            "or remove model.quantization"
        ),
        cel="!has(self.model.quantization) || self.resources.gpusPerWorker > 0",
        holds=lambda s: s.model.quantization is None or s.resources.gpus_per_worker > 0,
    ),
    # With quantization `auto` always resolves to DDP (the trainer's resolve_strategy), so the FSDP
    # knobs would be ignored silently: refuse them here rather than accept a spec that cannot apply.
    Rule(
        field="model.quantization",
        message=(
            "quantized base weights are not sharded with FSDP here (strategy auto trains them with DDP; "
            "QLoRA adapters are small): use training.distribution.strategy ddp or auto and leave "
            "sharding, cpuOffload and autoWrapLayers unset"
        ),
        cel=(
            "!has(self.model.quantization) || ("
            "(!has(self.training.distribution.strategy) || self.training.distribution.strategy != 'fsdp') && "
            "(!has(self.training.distribution.sharding) || self.training.distribution.sharding == 'full') && "
            "(!has(self.training.distribution.cpuOffload) || !self.training.distribution.cpuOffload) && "
            "!has(self.training.distribution.autoWrapLayers))"
        ),
        holds=lambda s: (
            s.model.quantization is None
            or (
                s.training.distribution.strategy != "fsdp"
                and s.training.distribution.sharding == "full"
                and not s.training.distribution.cpu_offload
                and s.training.distribution.auto_wrap_layers is None
            )
        ),
    ),
    Rule(
        field="training.distribution.sharding",
        message=(
            "hybrid shards inside a worker and replicates across workers, so it needs "
            "resources.gpusPerWorker above 1; use full or grad-op"
        ),
        cel="self.training.distribution.sharding != 'hybrid' || self.resources.gpusPerWorker > 1",
        holds=lambda s: s.training.distribution.sharding != "hybrid" or s.resources.gpus_per_worker > 1,
    ),
)
