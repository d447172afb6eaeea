"""The numbers do not depend on the worker count (issue 14, item 1).

The same job runs with one worker and a batch of B, with one worker and B/2 accumulated twice, and
with two workers under torchrun (gloo) and B/2 each: every step must see the same samples and log
the same loss and gradient norm, and the published weights must be the same. Before the fix a
two-worker classifier logged twice the loss and gradient norm (HF scaled a mean loss by the world
size) and accumulation summed micro-batch means. Sequence classification runs with class weights
(the weighted loss must split exactly across ranks); causal-lm SFT has responses of different
lengths, so each rank holds a different number of tokens and only a global token count is exact.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from finetune_testkit.trainer_helpers import (
    classification_spec,
    json_lines,
    run_trainer,
    s3_test_prefix,
    sft_records,
    start_distributed,
    tiny_classification_files,
    trainer_env,
    write_config,
    write_jsonl,
    write_tiny_gpt2,
)

RUN_SECONDS = 300
LOSS_TOLERANCE = {"rel": 1e-4, "abs": 1e-5}


def train_logs(text: str) -> dict[int, dict[str, Any]]:
    """step -> rank 0's 'train log' line of that step (loggingSteps 1)."""
    return {r["step"]: r for r in json_lines(text) if r.get("msg") == "train log" and "loss" in r}


def samples_per_step(path: Path) -> dict[int, set[int]]:
    """step -> sample ids that step trained on, over all ranks and micro-batches."""
    steps: dict[int, set[int]] = defaultdict(set)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        steps[record["step"]].update(record["ids"])
    return dict(steps)


def run_single(tmp: Path, name: str, spec: dict[str, Any], cluster_env: dict[str, str]) -> str:
    work = tmp / name
    work.mkdir()
    env = trainer_env(work, **cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(work / "samples"))
    result = run_trainer(write_config(work / "job.json", spec), env, timeout=RUN_SECONDS)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


def run_two_workers(tmp: Path, name: str, spec: dict[str, Any], cluster_env: dict[str, str]) -> str:
    work = tmp / name
    work.mkdir()
    env = trainer_env(
        work, **cluster_env, GLOO_SOCKET_IFNAME="lo", FINETUNE_TEST_SAMPLE_LOG=str(work / "samples")
    )
    log = work / "torchrun.log"
    agent = start_distributed("torch.distributed.run", write_config(work / "job.json", spec), env, log)
    try:
        code = agent.wait(timeout=RUN_SECONDS)
    finally:
        if agent.poll() is None:
            agent.kill()
    text = log.read_text()
    assert code == 0, text[-4000:]
    return text


def output_weights(s3, uri: str, local: Path) -> dict[str, torch.Tensor]:
    s3.get_file(f"{uri}/model.safetensors".removeprefix("s3://"), str(local))
    return load_file(str(local))


def assert_same_run(reference: str, other: str, label: str) -> None:
    expected, got = train_logs(reference), train_logs(other)
    assert sorted(got) == sorted(expected), f"{label}: steps differ"
    for step, entry in expected.items():
        for key in ("loss", "grad_norm"):
            assert got[step][key] == pytest.approx(entry[key], **LOSS_TOLERANCE), f"{label}: {key} at {step}"


def assert_same_weights(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor], label: str):
    assert reference.keys() == other.keys()
    for key, value in reference.items():
        torch.testing.assert_close(other[key], value, rtol=1e-3, atol=2e-4, msg=f"{label}: {key}")


def test_classification_is_the_same_at_any_world_size(tmp_path, s3_bucket, s3, cluster_env):
    model, train = tiny_classification_files(tmp_path, seed=1, count=96)
    prefix = s3_test_prefix(s3_bucket)

    def spec(name: str, batch: int, accumulation: int) -> dict[str, Any]:
        job = classification_spec(
            f"file://{model}", f"file://{train}", None, f"{prefix}/{name}/out", f"{prefix}/{name}/ckpt",
            epochs=1, batchSizePerDevice=batch, gradientAccumulationSteps=accumulation,
            classWeights="auto", maxGradNorm=0.3,
        )  # fmt: skip
        job["model"]["dropout"] = 0.0  # dropout draws differ per rank; the trajectory must not
        job["dataset"]["split"] = {"validation": 0.0}
        job["training"]["evaluation"] = {"strategy": "no"}
        job["checkpoint"]["everySteps"] = 1000
        return job

    one = run_single(tmp_path, "one", spec("one", 8, 1), cluster_env)
    accumulated = run_single(tmp_path, "accumulated", spec("accumulated", 4, 2), cluster_env)
    two = run_two_workers(tmp_path, "two", spec("two", 4, 1), cluster_env)

    steps = samples_per_step(tmp_path / "one" / "samples")
    assert len(steps) == 12
    assert samples_per_step(tmp_path / "two" / "samples") == steps  # the same global batches
    assert samples_per_step(tmp_path / "accumulated" / "samples") == steps
    # 2 x ln 2 would be the doubled loss of the bug; a fresh binary head starts near ln 2.
    assert train_logs(two)[1]["loss"] < 1.0
    assert_same_run(one, accumulated, "accumulation 2")
    assert_same_run(one, two, "two workers")

    reference = output_weights(s3, f"{prefix}/one/out", tmp_path / "one.safetensors")
    assert_same_weights(reference, output_weights(s3, f"{prefix}/two/out", tmp_path / "two.st"), "two")
    acc = output_weights(s3, f"{prefix}/accumulated/out", tmp_path / "acc.st")
    assert_same_weights(reference, acc, "accumulation")


def test_causal_lm_is_the_same_at_any_world_size(tmp_path, s3_bucket, s3, cluster_env):
    model = write_tiny_gpt2(tmp_path / "model")
    train = write_jsonl(tmp_path / "sft.jsonl", sft_records(48))
    prefix = s3_test_prefix(s3_bucket)

    def spec(name: str, batch: int) -> dict[str, Any]:
        return {
            "model": {"uri": f"file://{model}", "task": "causal-lm", "dropout": 0.0},
            "dataset": {"train": f"file://{train}", "maxLength": 32, "split": {"validation": 0.0}},
            "training": {"epochs": 1, "batchSizePerDevice": batch, "learningRate": 1e-2, "loggingSteps": 1,
                         "evaluation": {"strategy": "no"}},
            "checkpoint": {"uri": f"{prefix}/{name}/ckpt", "everySteps": 1000},
            "output": {"uri": f"{prefix}/{name}/out"},
            "storage": {"secretRef": {"name": "s3-credentials"}},
        }  # fmt: skip

    one = run_single(tmp_path, "one", spec("one", 6), cluster_env)
    two = run_two_workers(tmp_path, "two", spec("two", 3), cluster_env)
    assert samples_per_step(tmp_path / "two" / "samples") == samples_per_step(tmp_path / "one" / "samples")
    assert_same_run(one, two, "two workers")
    reference = output_weights(s3, f"{prefix}/one/out", tmp_path / "one.safetensors")
    assert_same_weights(reference, output_weights(s3, f"{prefix}/two/out", tmp_path / "two.st"), "two")
