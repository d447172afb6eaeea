"""Two workers under torchrun (gloo on CPU): a SIGTERM leads both ranks to one committed checkpoint.

SIGTERM goes to one worker only (rank 1); the stop flag is all-reduced at the next step boundary,
so both ranks save the same step, rank 0 commits the manifest after rank 1's part is uploaded, and
both exit 143. A second torchrun resumes from that checkpoint on both ranks; this time the SIGTERM
goes to torchrun's agent, which forwards it to the workers, and a later step is committed.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from finetune_testkit.trainer_helpers import (
    committed_steps,
    json_lines,
    s3_test_prefix,
    start_distributed,
    tiny_classification_files,
    trainer_env,
    until_stopped_spec,
    write_config,
)
from localcluster.waiting import wait_until

DEADLINE_SECONDS = 180
GRACE_SECONDS = 60
TORCHRUN = "torch.distributed.run"


def train_steps(log: Path) -> list[int]:
    return [r["step"] for r in json_lines(log.read_text()) if r.get("msg") == "train log" and "loss" in r]


def worker_pids(agent: int) -> dict[int, int]:
    """rank -> pid of the agent's worker processes."""
    children: list[int] = []
    for task in Path(f"/proc/{agent}/task").iterdir():
        children += [int(p) for p in (task / "children").read_text().split()]
    ranks = {}
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"RANK="):
                ranks[int(item[5:])] = pid
    return ranks


def stop_steps(log: Path) -> dict[int, int]:
    return {
        r["rank"]: r["step"]
        for r in json_lines(log.read_text())
        if r.get("msg", "").startswith("stop requested")
    }


def test_sigterm_to_one_worker_commits_one_checkpoint_and_resumes(tmp_path, s3_bucket, s3, cluster_env):
    model, train = tiny_classification_files(tmp_path, seed=1)
    prefix = s3_test_prefix(s3_bucket)
    spec = until_stopped_spec(model, train, prefix, learningRate=1e-3)
    spec["checkpoint"]["everySteps"] = 1000000
    config = write_config(tmp_path / "job.json", spec)
    env = trainer_env(tmp_path, **cluster_env, GLOO_SOCKET_IFNAME="lo")

    # First attempt: SIGTERM to rank 1 only.
    first_log = tmp_path / "first.log"
    agent = start_distributed(TORCHRUN, config, env, first_log)
    try:
        wait_until(lambda: len(train_steps(first_log)) >= 3, DEADLINE_SECONDS, "three training steps")
        pids = wait_until(
            lambda: len(worker_pids(agent.pid)) == 2 and worker_pids(agent.pid),
            DEADLINE_SECONDS,
            "two workers",
        )
        os.kill(pids[1], signal.SIGTERM)
        agent.wait(timeout=GRACE_SECONDS)
    finally:
        if agent.poll() is None:
            agent.kill()
    text = first_log.read_text()
    stops = stop_steps(first_log)
    assert set(stops) == {0, 1}, text[-3000:]
    step = stops[0]
    assert stops[1] == step
    assert committed_steps(text) == [step]
    assert "exitcode  : 143" in text or "exitcode: 143" in text, text[-2000:]
    manifest = json.loads(s3.cat_file(f"{prefix}/ckpt/checkpoint-{step}/manifest.json".removeprefix("s3://")))
    assert manifest["worldSize"] == 2
    paths = {f["path"] for f in manifest["files"]}
    assert {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors", "optimizer.pt"} <= paths

    # Second attempt: resumes on both ranks from that step; SIGTERM to the agent this time.
    second_log = tmp_path / "second.log"
    agent = start_distributed(TORCHRUN, config, env, second_log)
    try:
        wait_until(
            lambda: any(s > step + 2 for s in train_steps(second_log)),
            DEADLINE_SECONDS,
            "training past the resumed step",
        )
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=GRACE_SECONDS)
    finally:
        if agent.poll() is None:
            agent.kill()
    records = json_lines(second_log.read_text())
    resumed = {r["rank"]: r["checkpoint_step"] for r in records if r.get("msg") == "resuming"}
    assert resumed == {0: step, 1: step}
    assert min(train_steps(second_log)) == step + 1
    second_stops = stop_steps(second_log)
    assert set(second_stops) == {0, 1} and len(set(second_stops.values())) == 1
    later = committed_steps(second_log.read_text())
    assert later == [second_stops[0]] and later[0] > step
