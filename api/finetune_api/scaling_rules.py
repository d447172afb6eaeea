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
    Rule(
        field="model.quantization",
        message=(
            "quantized base weights are not sharded with FSDP here; use training.distribution.strategy "
            "ddp or auto (QLoRA adapters are small)"
        ),
        cel="!has(self.model.quantization) || self.training.distribution.strategy != 'fsdp'",
        holds=lambda s: s.model.quantization is None or s.training.distribution.strategy != "fsdp",
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
