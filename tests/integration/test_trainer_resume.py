"""Resume equivalence (docs/architecture.md, "Checkpoint commit protocol"): stop anywhere, resume
from the last commit, get the same run.

Run A trains straight through. Run B is SIGKILLed right after the commit at step K (a test-only
hook in the checkpoint manager), in the middle of an epoch, and is then started again with the
same configuration. B must resume from checkpoint-K, see every sample of the interrupted epoch
exactly once, and end with A's per-step losses and A's weights.
"""

from __future__ import annotations

import json
import signal
from collections import defaultdict

import pytest
import torch
from safetensors.torch import load_file

from finetune_testkit.trainer_helpers import (
    classification_spec,
    json_lines,
    run_trainer,
    s3_test_prefix,
    step_losses,
    tiny_classification_files,
    trainer_env,
    write_config,
)

KILL_STEP = 15  # 20 steps per epoch: the kill lands mid-epoch, so the data position matters
TOTAL_STEPS = 40


def sample_log(path) -> dict[int, list[int]]:
    steps: dict[int, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        steps[record["step"]].extend(record["ids"])
    return steps


@pytest.fixture
def job(tmp_path, s3_bucket):
    model, train = tiny_classification_files(tmp_path, seed=1)
    prefix = s3_test_prefix(s3_bucket)

    def config(name: str):
        spec = classification_spec(
            f"file://{model}",
            f"file://{train}",
            None,
            f"{prefix}/{name}/out",
            f"{prefix}/{name}/ckpt",
            epochs=2,
            learningRate=5e-3,
        )
        spec["dataset"]["split"] = {"validation": 0.0}
        spec["training"]["evaluation"] = {"strategy": "no"}
        return write_config(tmp_path / f"{name}.json", spec)

    return config, prefix


def test_killed_run_resumes_to_the_same_result(tmp_path, job, s3, cluster_env):
    config, prefix = job
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()

    run_a = run_trainer(
        config("a"), trainer_env(a_dir, **cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(a_dir / "samples"))
    )
    assert run_a.returncode == 0, run_a.stderr[-3000:]

    b_config = config("b")
    b_samples = b_dir / "samples"
    killed = run_trainer(
        b_config,
        trainer_env(
            b_dir,
            **cluster_env,
            FINETUNE_TEST_SAMPLE_LOG=str(b_samples),
            FINETUNE_TEST_KILL_AFTER_COMMIT_STEP=str(KILL_STEP),
        ),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    first_samples = {s: ids for s, ids in sample_log(b_samples).items() if s <= KILL_STEP}
    b_samples.unlink()

    resumed = run_trainer(
        b_config, trainer_env(b_dir, **cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(b_samples))
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resuming = [r for r in json_lines(resumed.stderr) if r.get("msg") == "resuming"]
    assert [r["checkpoint_step"] for r in resuming] == [KILL_STEP]

    # Per-step losses: the first part from the killed run, the rest from the resumed one.
    losses_a = step_losses(run_a.stderr)
    losses_b = {
        **{s: v for s, v in step_losses(killed.stderr).items() if s <= KILL_STEP},
        **step_losses(resumed.stderr),
    }
    assert sorted(losses_a) == list(range(1, TOTAL_STEPS + 1))
    assert sorted(losses_b) == sorted(losses_a)
    for step in losses_a:
        assert losses_b[step] == pytest.approx(losses_a[step], rel=1e-5, abs=1e-6), f"step {step}"

    # The resumed run starts after the commit and the interrupted epoch sees no sample twice.
    second_samples = sample_log(b_samples)
    assert min(second_samples) == KILL_STEP + 1
    steps_per_epoch = TOTAL_STEPS // 2
    epoch0 = [i for s in range(1, steps_per_epoch + 1) for i in (first_samples | second_samples)[s]]
    assert len(epoch0) == len(set(epoch0)) == 160 - 0  # every training sample exactly once
    assert first_samples | second_samples == sample_log(a_dir / "samples")

    # Final weights match.
    for name, local in (("a", a_dir / "a.safetensors"), ("b", b_dir / "b.safetensors")):
        s3.get_file(f"{prefix}/{name}/out/model.safetensors".removeprefix("s3://"), str(local))
    weights_a, weights_b = load_file(str(a_dir / "a.safetensors")), load_file(str(b_dir / "b.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        torch.testing.assert_close(weights_b[key], weights_a[key], rtol=1e-5, atol=1e-6, msg=key)
