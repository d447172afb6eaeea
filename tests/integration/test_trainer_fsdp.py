"""FSDP on a CPU gang (2 ranks, gloo): it learns what DDP learns, checkpoints per rank, resumes exactly.

A tiny GPT-2 and a tiny BERT, built from a config, train for real. DDP and FSDP runs of the same
job at the same world size log the same per-step losses (FSDP changes where the state lives, not
the maths); the published FSDP model is a plain ``save_pretrained`` directory with the DDP run's
weights. A run SIGKILLed right after a commit resumes on both ranks from that sharded checkpoint,
each rank downloading only its part, and ends like the uninterrupted run.
"""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from finetune_testkit.fsdp_gang import run_gang
from finetune_testkit.trainer_helpers import (
    json_lines,
    s3_test_prefix,
    sft_records,
    step_losses,
    tiny_classification_files,
    trainer_env,
    write_config,
    write_jsonl,
    write_tiny_gpt2,
)

pytestmark = pytest.mark.cluster

STEPS = 16  # 2 epochs of 64 records at 2 ranks x 4 per device
KILL_STEP = 5  # mid-epoch, so the data position matters
LOSS_TOLERANCE = {"rel": 1e-3, "abs": 1e-4}


def causal_spec(model: Path, train: Path, prefix: str, strategy: str) -> dict[str, Any]:
    return {
        "model": {"uri": f"file://{model}", "task": "causal-lm"},
        "dataset": {"train": f"file://{train}", "maxLength": 16, "split": {"validation": 0.0}},
        "training": {
            "epochs": 2, "batchSizePerDevice": 4, "learningRate": 5e-3, "loggingSteps": 1,
            "evaluation": {"strategy": "no"}, "distribution": {"strategy": strategy},
        },
        "checkpoint": {"uri": f"{prefix}/ckpt", "everySteps": KILL_STEP, "keep": 2},
        "output": {"uri": f"{prefix}/out"},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    }  # fmt: skip


def sample_log(path: Path) -> dict[int, list[int]]:
    steps: dict[int, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        steps[record["step"]].extend(record["ids"])
    return {s: sorted(ids) for s, ids in steps.items()}


def output_weights(s3, uri: str, local: Path) -> dict[str, torch.Tensor]:
    s3.get_file(f"{uri}/model.safetensors".removeprefix("s3://"), str(local))
    return load_file(str(local))


def part_paths(s3, key: str) -> set[str]:
    """The files one rank's ``_rank-<r>.json`` lists, read with the trainer's own parser (fencing.py)."""
    from finetune_trainer.fencing import parse_rank_part

    _, files = parse_rank_part(s3.cat_file(key).decode())
    return {f.path for f in files}


class Run:
    """One finished gang: its log text, losses and where its output went."""

    def __init__(self, directory: Path, prefix: str, returncode: int) -> None:
        self.directory = directory
        self.prefix = prefix
        self.returncode = returncode
        self.text = (directory / "gang.log").read_text()
        self.losses = step_losses(self.text)

    def records(self, msg: str) -> list[dict[str, Any]]:
        return [r for r in json_lines(self.text) if r.get("msg") == msg]


def gang(tmp: Path, name: str, spec: dict[str, Any], cluster_env, **env: str) -> Run:
    directory = tmp / name
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory / "job.json", spec)
    environment = trainer_env(
        directory,
        **cluster_env,
        GLOO_SOCKET_IFNAME="lo",
        FINETUNE_TEST_SAMPLE_LOG=str(directory / "samples"),
        **env,
    )
    code = run_gang(config, environment, directory / "gang.log")
    return Run(directory, spec["output"]["uri"], code)


@pytest.fixture(scope="module")
def causal(tmp_path_factory, s3_bucket, cluster_env):
    """The same causal-LM job trained with DDP and with FSDP (2 ranks each)."""
    tmp = tmp_path_factory.mktemp("fsdp-causal")
    model = write_tiny_gpt2(tmp / "model")
    train = write_jsonl(tmp / "train.jsonl", sft_records(64))
    prefix = s3_test_prefix(s3_bucket)
    runs = {
        strategy: gang(
            tmp, strategy, causal_spec(model, train, f"{prefix}/{strategy}", strategy), cluster_env
        )
        for strategy in ("ddp", "fsdp")
    }
    return tmp, model, train, prefix, runs


def test_fsdp_learns_the_ddp_losses_and_publishes_a_from_pretrained_model(causal, s3):
    from transformers import AutoModelForCausalLM

    tmp, _, _, _, runs = causal
    ddp, fsdp = runs["ddp"], runs["fsdp"]
    assert ddp.returncode == 0, ddp.text[-3000:]
    assert fsdp.returncode == 0, fsdp.text[-3000:]
    strategies = {r["rank"]: r["strategy"] for r in fsdp.records("distribution strategy")}
    assert strategies == {0: "fsdp", 1: "fsdp"}
    assert sorted(fsdp.losses) == sorted(ddp.losses) == list(range(1, STEPS + 1))
    for step in ddp.losses:
        assert fsdp.losses[step] == pytest.approx(ddp.losses[step], **LOSS_TOLERANCE), f"step {step}"
    first, last = fsdp.losses[1], sum(fsdp.losses[s] for s in range(STEPS - 2, STEPS + 1)) / 3
    assert last < 0.7 * first  # it learns

    out = tmp / "fsdp-output"
    s3.get(f"{fsdp.prefix}/".removeprefix("s3://"), str(out), recursive=True)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert type(model).__name__ == "GPT2LMHeadModel" and model.config.architectures == ["GPT2LMHeadModel"]
    ddp_weights = output_weights(s3, ddp.prefix, tmp / "ddp.safetensors")
    fsdp_weights = load_file(str(out / "model.safetensors"))
    assert ddp_weights.keys() == fsdp_weights.keys()
    for key in ddp_weights:
        torch.testing.assert_close(fsdp_weights[key], ddp_weights[key], rtol=1e-3, atol=1e-4, msg=key)


def test_each_rank_uploads_its_own_shards_and_rank_0_commits_the_manifest(causal, s3):
    _, _, _, prefix, runs = causal
    assert runs["fsdp"].returncode == 0
    last = STEPS // KILL_STEP * KILL_STEP  # the newest scheduled commit (no save at the very end)
    ckpt = f"{prefix}/fsdp/ckpt/checkpoint-{last}".removeprefix("s3://")
    manifest = json.loads(s3.cat_file(f"{ckpt}/manifest.json"))
    paths = {f["path"] for f in manifest["files"]}
    shards = {
        f"{d}/{n}"
        for d in ("pytorch_model_fsdp_0", "optimizer_0")
        for n in ("__0_0.distcp", "__1_0.distcp", ".metadata")
    }
    assert shards <= paths and manifest["worldSize"] == 2
    assert "model.safetensors" not in paths  # no full copy in a sharded checkpoint
    rank1 = part_paths(s3, f"{ckpt}/_rank-1.json")
    assert rank1 == {"pytorch_model_fsdp_0/__1_0.distcp", "optimizer_0/__1_0.distcp", "rng_state_1.pth"}
    rank0 = part_paths(s3, f"{ckpt}/_rank-0.json")
    assert rank0 | rank1 == paths and not rank0 & rank1


def test_a_killed_fsdp_run_resumes_on_both_ranks_to_the_same_result(causal, cluster_env, s3):
    tmp, model, train, prefix, runs = causal
    straight = runs["fsdp"]
    assert straight.returncode == 0
    spec = causal_spec(model, train, f"{prefix}/killed", "fsdp")
    killed = gang(tmp, "killed", spec, cluster_env, FINETUNE_TEST_KILL_AFTER_COMMIT_STEP=str(KILL_STEP))
    assert killed.returncode != 0
    assert [r["checkpoint_step"] for r in killed.records("checkpoint committed")] == [KILL_STEP]
    first_samples = {s: ids for s, ids in sample_log(killed.directory / "samples").items() if s <= KILL_STEP}
    (killed.directory / "samples").unlink()

    resumed = gang(tmp, "killed", spec, cluster_env)
    assert resumed.returncode == 0, resumed.text[-3000:]
    assert {r["rank"]: r["checkpoint_step"] for r in resumed.records("resuming")} == {
        0: KILL_STEP,
        1: KILL_STEP,
    }
    # Rank 1 fetched its own part: not rank 0's model shard (every parameter is sharded).
    rank1_dir = resumed.directory / "work" / "resume" / "rank-1" / f"checkpoint-{KILL_STEP}"
    assert (rank1_dir / "pytorch_model_fsdp_0" / "__1_0.distcp").is_file()
    assert not (rank1_dir / "pytorch_model_fsdp_0" / "__0_0.distcp").exists()
    assert not (rank1_dir / "rng_state_0.pth").exists()

    losses = {**{s: v for s, v in killed.losses.items() if s <= KILL_STEP}, **resumed.losses}
    assert sorted(losses) == sorted(straight.losses)
    for step, loss in straight.losses.items():
        assert losses[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), f"step {step}"
    second_samples = sample_log(resumed.directory / "samples")
    assert min(second_samples) == KILL_STEP + 1
    assert first_samples | second_samples == sample_log(straight.directory / "samples")  # no sample twice

    weights = output_weights(s3, resumed.prefix, tmp / "resumed.safetensors")
    expected = output_weights(s3, straight.prefix, tmp / "straight.safetensors")
    for key in expected:
        torch.testing.assert_close(weights[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


def test_bert_classification_with_fsdp_matches_ddp_and_loads(tmp_path, s3_bucket, s3, cluster_env):
    from transformers import AutoModelForSequenceClassification

    model, train = tiny_classification_files(tmp_path, seed=1, count=64)
    prefix = s3_test_prefix(s3_bucket)
    runs = {}
    for strategy in ("ddp", "fsdp"):
        spec = {
            "model": {"uri": f"file://{model}", "task": "sequence-classification", "numLabels": 2},
            "dataset": {"train": f"file://{train}", "maxLength": 16, "split": {"validation": 0.0}},
            "training": {
                "epochs": 1, "batchSizePerDevice": 4, "learningRate": 5e-3, "loggingSteps": 1,
                "evaluation": {"strategy": "no"}, "distribution": {"strategy": strategy},
            },
            "checkpoint": {"uri": f"{prefix}/{strategy}/ckpt", "everySteps": 1000},
            "output": {"uri": f"{prefix}/{strategy}/out"},
            "storage": {"secretRef": {"name": "s3-credentials"}},
        }  # fmt: skip
        runs[strategy] = gang(tmp_path, strategy, spec, cluster_env)
        assert runs[strategy].returncode == 0, runs[strategy].text[-3000:]
    assert sorted(runs["fsdp"].losses) == sorted(runs["ddp"].losses) == list(range(1, 9))
    for step, loss in runs["ddp"].losses.items():
        assert runs["fsdp"].losses[step] == pytest.approx(loss, **LOSS_TOLERANCE), f"step {step}"
    out = tmp_path / "bert-output"
    s3.get(f"{prefix}/fsdp/out/".removeprefix("s3://"), str(out), recursive=True)
    loaded = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert type(loaded).__name__ == "BertForSequenceClassification" and loaded.config.num_labels == 2


def test_sigterm_commits_one_sharded_checkpoint_that_resumes_at_another_world_size_but_not_unsharded(
    tmp_path, s3_bucket, s3, cluster_env
):
    from finetune_testkit.fsdp_gang import start_gang
    from finetune_testkit.trainer_helpers import until_stopped_spec
    from localcluster.waiting import wait_until

    model, train = tiny_classification_files(tmp_path, seed=1)
    prefix = s3_test_prefix(s3_bucket)
    spec = until_stopped_spec(model, train, prefix, learningRate=1e-3)
    spec["checkpoint"]["everySteps"] = 1000000
    spec["training"]["distribution"] = {"strategy": "fsdp"}
    config = write_config(tmp_path / "job.json", spec)

    def train_steps(log: Path) -> list[int]:
        return [r["step"] for r in json_lines(log.read_text()) if r.get("msg") == "train log" and "loss" in r]

    def until_sigterm(name: str, nproc: int, past: int) -> str:
        log = tmp_path / f"{name}.log"
        env = trainer_env(tmp_path / name, **cluster_env, GLOO_SOCKET_IFNAME="lo")
        agent = start_gang(config, env, log, nproc=nproc)
        try:
            wait_until(lambda: any(s > past for s in train_steps(log)), 300, f"training past step {past}")
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=120)
        finally:
            if agent.poll() is None:
                agent.kill()
        return log.read_text()

    text = until_sigterm("first", 2, 2)
    stops = {r["rank"]: r["step"] for r in json_lines(text) if r.get("msg", "").startswith("stop requested")}
    assert set(stops) == {0, 1} and len(set(stops.values())) == 1, text[-3000:]
    step = stops[0]
    assert [r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "checkpoint committed"] == [
        step
    ]
    manifest = json.loads(s3.cat_file(f"{prefix}/ckpt/checkpoint-{step}/manifest.json".removeprefix("s3://")))
    paths = {f["path"] for f in manifest["files"]}
    assert {
        "pytorch_model_fsdp_0/__0_0.distcp",
        "pytorch_model_fsdp_0/__1_0.distcp",
        "rng_state_1.pth",
    } <= paths

    # Three ranks: torch.distributed.checkpoint reshards the two ranks' shards on load.
    text = until_sigterm("three", 3, step + 1)
    resumed = {r["rank"]: r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "resuming"}
    assert resumed == {0: step, 1: step, 2: step}, text[-3000:]
    assert (
        min(s for s in (r["step"] for r in json_lines(text) if r.get("msg") == "train log" and "loss" in r))
        == step + 1
    )
    later = [r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "checkpoint committed"]
    assert len(later) == 1 and later[0] > step

    # One rank cannot shard: the FSDP checkpoint is refused with exit 78 and a clear reason.
    log = tmp_path / "one.log"
    code = run_gang(
        config, trainer_env(tmp_path / "one", **cluster_env, GLOO_SOCKET_IFNAME="lo"), log, nproc=1
    )
    assert code != 0
    termination = (tmp_path / "one" / "termination-log").read_text()
    assert "holds FSDP shards" in termination and "spec.training.distribution.strategy" in termination
    exits = [r for r in json_lines(log.read_text()) if r.get("msg") == "invalid configuration or data"]
    assert exits, log.read_text()[-3000:]


def test_fsdp_peak_rss_per_rank_is_below_ddp(tmp_path):
    """The same job at world size 2: each FSDP rank's peak RSS is below the DDP rank's (ratio reported).

    The model (about 19 M parameters: 300 MB of weights, gradients and Adam state under DDP) is large
    enough for the sharded state to outweigh Python, torch and the initial full-model load.
    """
    from bench.fsdp import measure

    result = measure(tmp_path, hidden=512, layers=6, steps=3)
    ratios = result["peakRssRatioFsdpOverDdp"]
    print(json.dumps({"peakRssRatioFsdpOverDdp": ratios, "runs": result["runs"]}))
    assert set(ratios) == {0, 1}
    assert all(ratio < 1.0 for ratio in ratios.values()), ratios
