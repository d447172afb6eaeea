"""Pure parts of issue 18: the API fields and rules, the DDP/FSDP decision, shard ownership and fetching."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from finetune_api import SpecError, parse_spec
from finetune_api.scaling import AUTO_FSDP_MEMORY_SHARE
from finetune_trainer.checkpoints import files_owned_by_rank
from finetune_trainer.errors import ConfigError
from finetune_trainer.manifest import FileEntry, Manifest
from finetune_trainer.modeling import bitsandbytes_options
from finetune_trainer.settings import QuantizationSettings, TrainerSettings, settings_from_spec
from finetune_trainer.sharded_checkpoints import (
    check_resume_layout,
    files_for_rank,
    is_sharded_layout,
    rank_of_file,
    shared_shard_files,
)
from finetune_trainer.sharding import (
    ShardingPlan,
    count_parameters,
    default_wrap_layers,
    fsdp_config,
    hybrid_replicas,
    resolve_strategy,
    return_freed_buffers_to_the_kernel,
    scaling_from_settings,
    training_arguments,
    training_state_bytes,
)

BASE: dict[str, Any] = {
    "model": {"uri": "s3://b/m", "task": "causal-lm"},
    "dataset": {"train": "s3://b/train.jsonl"},
    "output": {"uri": "s3://b/out"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}
LORA = {"r": 8}


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    for path, value in changes.items():
        section, key = path.split("__")
        spec.setdefault(section, {})[key] = value
    return spec


def settings_with(**changes: Any) -> TrainerSettings:
    """The trainer's typed settings of ``spec_with(**changes)``, through the API's parser."""
    return settings_from_spec(parse_spec(spec_with(**changes)))


def plan(strategy: str, **changes: Any) -> ShardingPlan:
    """A plan with the API's default knobs (read from the parsed spec, not re-declared here)."""
    d = settings_with().training.distribution
    fields: dict[str, Any] = {
        "sharding": d.sharding,
        "cpu_offload": d.cpu_offload,
        "auto_wrap_layers": d.auto_wrap_layers,
        "reason": "test",
        "replicas": 1,
    }
    return ShardingPlan(strategy, **{**fields, **changes})


# ------------------------------------------------------------------ API


def test_defaults_are_auto_full_unquantized() -> None:
    spec = parse_spec(BASE)
    d = spec.training.distribution
    assert (d.strategy, d.sharding, d.cpu_offload, d.auto_wrap_layers) == ("auto", "full", False, None)
    assert spec.model.quantization is None


def test_a_qlora_spec_on_gpus_is_accepted_with_its_defaults() -> None:
    spec = parse_spec(spec_with(model__lora=LORA, model__quantization={}, resources__gpusPerWorker=1))
    q = spec.model.quantization
    assert q is not None and (q.bits, q.type, q.double_quant, q.compute_dtype) == (4, "nf4", True, "bf16")


Q, D = "spec.model.quantization", "spec.training.distribution"
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("quantization-without-lora", {"model__quantization": {}, "resources__gpusPerWorker": 1}, Q),
    ("quantization-on-cpu", {"model__quantization": {}, "model__lora": LORA}, Q),
    (
        "quantization-with-fsdp",
        {"model__quantization": {}, "model__lora": LORA, "resources__gpusPerWorker": 1,
         "training__distribution": {"strategy": "fsdp"}},
        Q,
    ),
    (
        "quantization-with-cpu-offload",
        {"model__quantization": {}, "model__lora": LORA, "resources__gpusPerWorker": 1,
         "training__distribution": {"cpuOffload": True}},
        Q,
    ),
    (
        "quantization-with-grad-op-sharding",
        {"model__quantization": {}, "model__lora": LORA, "resources__gpusPerWorker": 2,
         "training__distribution": {"sharding": "grad-op"}},
        Q,
    ),
    (
        "quantization-with-wrap-layers",
        {"model__quantization": {}, "model__lora": LORA, "resources__gpusPerWorker": 1,
         "training__distribution": {"autoWrapLayers": ["LlamaDecoderLayer"]}},
        Q,
    ),
    ("quantization-bits-3", {"model__quantization": {"bits": 3}}, Q + ".bits"),
    ("quantization-type", {"model__quantization": {"type": "int4"}}, Q + ".type"),
    ("strategy-unknown", {"training__distribution": {"strategy": "zero3"}}, D + ".strategy"),
    ("sharding-unknown", {"training__distribution": {"sharding": "half"}}, D + ".sharding"),
    ("hybrid-without-gpus", {"training__distribution": {"sharding": "hybrid"}}, D + ".sharding"),
    (
        "ddp-with-offload",
        {"training__distribution": {"strategy": "ddp", "cpuOffload": True}},
        D + ".strategy",
    ),
    (
        "wrap-class-not-identifier",
        {"training__distribution": {"autoWrapLayers": ["Llama Decoder"]}},
        D + ".autoWrapLayers",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_scaling_specs_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(spec_with(**changes))
    assert any(
        e.path == field or e.path.startswith((field + ".", field + "[")) for e in refused.value.errors
    ), str(refused.value)


def test_crd_carries_the_rules_and_descriptions() -> None:
    from finetune_api.job_crd import finetunejob_crd

    crd = finetunejob_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    distribution = spec["properties"]["training"]["properties"]["distribution"]
    assert distribution["properties"]["strategy"]["enum"] == ["auto", "ddp", "fsdp"]
    assert "FSDP2" in distribution["properties"]["strategy"]["description"]
    assert any("cpuOffload" in rule["rule"] for rule in distribution["x-kubernetes-validations"])
    quantization = spec["properties"]["model"]["properties"]["quantization"]
    assert quantization["properties"]["bits"]["enum"] == [4, 8]
    rules = " ".join(rule["rule"] for rule in spec["x-kubernetes-validations"])
    assert "has(self.model.quantization)" in rules and "sharding != 'hybrid'" in rules


# ------------------------------------------------------------------ the strategy


def test_training_state_counts_sixteen_bytes_per_trainable_parameter() -> None:
    assert training_state_bytes(1000, 1000) == 16000
    assert training_state_bytes(1000, 10) == 990 * 4 + 10 * 16  # LoRA: frozen weights only
    assert training_state_bytes(1000, 10, weight_bytes=2) == 990 * 2 + 160


@pytest.mark.parametrize(
    ("requested", "world", "state", "memory", "quantized", "expected"),
    [
        ("fsdp", 2, 1, 10**9, False, "fsdp"),
        ("ddp", 2, 10**12, 10**9, False, "ddp"),
        ("fsdp", 1, 1, 10**9, False, "ddp"),  # one rank cannot shard
        ("auto", 1, 10**12, 10**9, False, "ddp"),
        ("auto", 2, int(10**9 * AUTO_FSDP_MEMORY_SHARE), 10**9, False, "ddp"),  # exactly at the budget fits
        ("auto", 2, int(10**9 * AUTO_FSDP_MEMORY_SHARE) + 1, 10**9, False, "fsdp"),
        ("auto", 8, 10**12, 10**9, True, "ddp"),  # QLoRA is never sharded
    ],
)
def test_resolve_strategy(requested, world, state, memory, quantized, expected) -> None:
    strategy, reason = resolve_strategy(requested, world, state, memory, quantized)
    assert strategy == expected and reason


def test_tied_parameters_count_once() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=11, n_embd=8, n_layer=1, n_head=2, n_positions=8))
    total, trainable = count_parameters(model)
    assert total == trainable == sum(p.numel() for p in model.parameters())  # parameters() dedups too
    model.transformer.wte.weight.requires_grad = False
    assert count_parameters(model)[1] == total - 11 * 8


def test_fsdp_config_maps_the_knobs_onto_hf() -> None:
    grad_op = plan("fsdp", sharding="grad-op", cpu_offload=True, auto_wrap_layers=("GPT2Block",))
    config = fsdp_config(grad_op, activation_checkpointing=True)
    assert config["version"] == 2 and config["state_dict_type"] == "SHARDED_STATE_DICT"
    assert config["reshard_after_forward"] is False and config["cpu_offload"] is True
    assert config["transformer_layer_cls_to_wrap"] == ["GPT2Block"] and config["activation_checkpointing"]
    assert fsdp_config(plan("fsdp"), False)["reshard_after_forward"] is True
    assert "transformer_layer_cls_to_wrap" not in fsdp_config(plan("fsdp"), False)  # model's default


def test_training_arguments_leave_ddp_alone_and_move_checkpointing_into_fsdp() -> None:
    assert training_arguments(plan("ddp"), True) == {"activation_checkpointing": True}
    assert training_arguments(None, False) == {"activation_checkpointing": None}
    extra = training_arguments(plan("fsdp"), True)
    assert extra["fsdp"] is True and extra["activation_checkpointing"] is None
    assert extra["fsdp_config"]["activation_checkpointing"] is True


def test_hybrid_replicates_across_workers() -> None:
    assert hybrid_replicas(16, 8) == 2
    with pytest.raises(ConfigError, match=r"spec\.training\.distribution\.sharding"):
        hybrid_replicas(12, 8)


def test_qlora_is_refused_without_cuda_or_bitsandbytes() -> None:
    qlora = settings_with(model__lora=LORA, model__quantization={"bits": 4}, resources__gpusPerWorker=1)
    with pytest.raises(ConfigError, match=r"spec.model.quantization: QLoRA needs a CUDA GPU"):
        scaling_from_settings(qlora, cuda=False, bitsandbytes=True)
    with pytest.raises(ConfigError, match="lacks bitsandbytes"):
        scaling_from_settings(qlora, cuda=True, bitsandbytes=False)
    accepted = scaling_from_settings(qlora, cuda=True, bitsandbytes=True)
    assert accepted.quantization == QuantizationSettings(
        bits=4, type="nf4", double_quant=True, compute_dtype="bf16"
    )
    plain = scaling_from_settings(
        settings_with(training__distribution={"strategy": "fsdp", "autoWrapLayers": ["X"]}), False, False
    )
    assert plain.quantization is None and plain.distribution.auto_wrap_layers == ("X",)
    assert plain.distribution.strategy == "fsdp" and plain.distribution.sharding == "full"


def test_a_quantized_spec_with_auto_trains_with_ddp_on_any_world_size() -> None:
    qlora = settings_with(model__lora=LORA, model__quantization={}, resources__gpusPerWorker=8)
    scaling = scaling_from_settings(qlora, cuda=True, bitsandbytes=True)
    assert scaling.distribution.strategy == "auto" and scaling.quantization is not None
    # Even a training state far above a rank's memory stays unsharded: quantized weights are not sharded.
    strategy, reason = resolve_strategy(scaling.distribution.strategy, 64, 10**15, 10**9, quantized=True)
    assert strategy == "ddp" and "quantized" in reason


@pytest.mark.parametrize(
    ("quantization", "task", "expected"),
    [
        (
            QuantizationSettings(bits=4, type="nf4", double_quant=True, compute_dtype="bf16"),
            "causal-lm",
            {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
             "bnb_4bit_compute_dtype": torch.bfloat16},
        ),
        (
            QuantizationSettings(bits=4, type="fp4", double_quant=False, compute_dtype="fp16"),
            "causal-lm",
            {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False,
             "bnb_4bit_compute_dtype": torch.float16},
        ),
        (
            QuantizationSettings(bits=8, type="nf4", double_quant=True, compute_dtype="fp32"),
            "sequence-classification",
            {"load_in_8bit": True, "llm_int8_skip_modules": ["classifier", "score", "pre_classifier"]},
        ),
    ],
)  # fmt: skip
def test_quantization_maps_onto_bitsandbytes_config(
    quantization: QuantizationSettings, task: str, expected: dict[str, Any]
) -> None:
    from transformers import BitsAndBytesConfig

    assert bitsandbytes_options(quantization, task) == expected
    config = BitsAndBytesConfig(**expected)  # transformers accepts it (no GPU needed to build the config)
    assert config.load_in_4bit is (quantization.bits == 4) and config.load_in_8bit is (quantization.bits == 8)


def test_the_api_defaults_reach_the_trainer_qlora_config() -> None:
    qlora = settings_with(model__lora=LORA, model__quantization={}, resources__gpusPerWorker=1)
    assert qlora.model.quantization is not None
    assert bitsandbytes_options(qlora.model.quantization, "causal-lm") == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": torch.bfloat16,
    }


# ------------------------------------------------------------------ checkpoints

SHARDED = [
    "optimizer_0/.metadata",
    "optimizer_0/__0_0.distcp",
    "optimizer_0/__1_0.distcp",
    "pytorch_model_fsdp_0/.metadata",
    "pytorch_model_fsdp_0/__0_0.distcp",
    "pytorch_model_fsdp_0/__1_0.distcp",
    "rng_state_0.pth",
    "rng_state_1.pth",
    "scheduler.pt",
    "trainer_state.json",
]


def test_rank_of_file() -> None:
    assert rank_of_file("pytorch_model_fsdp_0/__12_3.distcp") == 12
    assert rank_of_file("rng_state_1.pth") == 1
    assert rank_of_file("pytorch_model_fsdp_0/.metadata") is None
    assert rank_of_file("trainer_state.json") is None


def test_each_rank_uploads_its_own_shards() -> None:
    assert files_owned_by_rank(SHARDED, 1, 2) == [
        "optimizer_0/__1_0.distcp",
        "pytorch_model_fsdp_0/__1_0.distcp",
        "rng_state_1.pth",
    ]
    zero = files_owned_by_rank(SHARDED, 0, 2)
    assert set(zero) | set(files_owned_by_rank(SHARDED, 1, 2)) == set(SHARDED)
    assert "pytorch_model_fsdp_0/.metadata" in zero and "pytorch_model_fsdp_0/__1_0.distcp" not in zero


def test_files_for_rank_same_layout_skips_other_shards_but_not_shared_ones() -> None:
    shared = {"optimizer_0/__0_0.distcp"}
    assert files_for_rank(SHARDED, 1, True, shared) == [
        "optimizer_0/.metadata",
        "optimizer_0/__0_0.distcp",
        "optimizer_0/__1_0.distcp",
        "pytorch_model_fsdp_0/.metadata",
        "pytorch_model_fsdp_0/__1_0.distcp",
        "rng_state_1.pth",
        "scheduler.pt",
        "trainer_state.json",
    ]
    resharding = files_for_rank(SHARDED, 2, False, set())
    assert set(resharding) == set(SHARDED) - {"rng_state_0.pth", "rng_state_1.pth"}


def test_shared_shard_files_are_those_with_unsharded_items() -> None:
    from torch.distributed.checkpoint.metadata import (
        BytesStorageMetadata,
        ChunkStorageMetadata,
        Metadata,
        MetadataIndex,
        TensorProperties,
        TensorStorageMetadata,
    )

    def chunk(offset: int) -> ChunkStorageMetadata:
        return ChunkStorageMetadata(offsets=torch.Size([offset]), sizes=torch.Size([2]))

    sharded = TensorStorageMetadata(TensorProperties(), torch.Size([4]), [chunk(0), chunk(2)])
    whole = TensorStorageMetadata(TensorProperties(), torch.Size([2]), [chunk(0)])
    storage = {
        MetadataIndex("w", torch.Size([0])): SimpleNamespace(relative_path="__0_0.distcp"),
        MetadataIndex("w", torch.Size([2])): SimpleNamespace(relative_path="__1_0.distcp"),
        MetadataIndex("step", torch.Size([0])): SimpleNamespace(relative_path="__1_0.distcp"),
        MetadataIndex("groups"): SimpleNamespace(relative_path="__0_0.distcp"),
    }
    only_step = Metadata({"w": sharded, "step": whole}, storage_data=storage)
    assert shared_shard_files(only_step) == {"__1_0.distcp"}
    with_bytes = Metadata({"w": sharded, "groups": BytesStorageMetadata()}, storage_data=storage)
    assert shared_shard_files(with_bytes) == {"__0_0.distcp"}


def manifest_of(paths: list[str], world_size: int = 2) -> Manifest:
    return Manifest(1, 0.1, world_size, "h", tuple(FileEntry(p, 1, "x") for p in paths))


def test_a_layout_mismatch_is_refused_with_exit_78() -> None:
    assert is_sharded_layout(SHARDED) and not is_sharded_layout(["model.safetensors", "optimizer.pt"])
    with pytest.raises(ConfigError, match=r"holds FSDP shards.*spec\.training\.distribution\.strategy"):
        check_resume_layout(manifest_of(SHARDED), "s3://b/c", plan("ddp", reason="one rank"))
    with pytest.raises(ConfigError, match="written unsharded"):
        check_resume_layout(manifest_of(["model.safetensors"]), "s3://b/c", plan("fsdp"))
    check_resume_layout(manifest_of(SHARDED, world_size=4), "s3://b/c", plan("fsdp"))  # reshards


def test_default_wrap_layers_leave_out_the_class_holding_the_input_embeddings() -> None:
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    bert = BertForSequenceClassification(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
        )
    )
    assert set(bert._no_split_modules) == {"BertEmbeddings", "BertLayer"}
    assert default_wrap_layers(bert) == ("BertLayer",)  # accelerate shards the embedding on its own
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=11, n_embd=8, n_layer=1, n_head=2, n_positions=8))
    assert default_wrap_layers(gpt2) == ("GPT2Block",)
    assert default_wrap_layers(torch.nn.Linear(2, 2)) is None


def test_only_a_cpu_fsdp_gang_changes_the_malloc_threshold() -> None:
    fsdp, ddp = plan("fsdp"), plan("ddp")
    assert return_freed_buffers_to_the_kernel(ddp, cuda=False) is False
    assert return_freed_buffers_to_the_kernel(fsdp, cuda=True) is False
    assert return_freed_buffers_to_the_kernel(fsdp, cuda=False) is True  # glibc (the trainer image's libc)
