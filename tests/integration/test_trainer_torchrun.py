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
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .trainer_helpers import (
    REPO,
    classification_spec,
    json_lines,
    sentiment_records,
    trainer_env,
    write_jsonl,
    write_tiny_bert,
)

DEADLINE_SECONDS = 180
GRACE_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_torchrun(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}",
        "-m", "finetune_trainer", "--config", str(config),
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until(predicate, what: str, deadline: float = DEADLINE_SECONDS):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


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
    model = write_tiny_bert(tmp_path / "model")
    write_jsonl(tmp_path / "train.jsonl", sentiment_records(160, seed=1))
    prefix = f"s3://{s3_bucket}/trainer-tests/{uuid.uuid4().hex[:10]}"
    spec = classification_spec(
        f"file://{model}", f"file://{tmp_path}/train.jsonl", None, f"{prefix}/out", f"{prefix}/ckpt",
        maxSteps=100000, scheduler="constant", learningRate=1e-3,
    )  # fmt: skip
    spec["training"]["evaluation"] = {"strategy": "no"}
    spec["checkpoint"]["everySteps"] = 1000000
    config = tmp_path / "job.json"
    config.write_text(json.dumps(spec))
    env = trainer_env(tmp_path, **cluster_env, GLOO_SOCKET_IFNAME="lo")

    # First attempt: SIGTERM to rank 1 only.
    first_log = tmp_path / "first.log"
    agent = start_torchrun(config, env, first_log)
    try:
        wait_until(lambda: len(train_steps(first_log)) >= 3, "three training steps")
        pids = wait_until(lambda: len(worker_pids(agent.pid)) == 2 and worker_pids(agent.pid), "two workers")
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
    committed = [r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "checkpoint committed"]
    assert committed == [step]
    assert "exitcode  : 143" in text or "exitcode: 143" in text, text[-2000:]
    manifest = json.loads(s3.cat_file(f"{prefix}/ckpt/checkpoint-{step}/manifest.json".removeprefix("s3://")))
    assert manifest["worldSize"] == 2
    paths = {f["path"] for f in manifest["files"]}
    assert {"rng_state_0.pth", "rng_state_1.pth", "model.safetensors", "optimizer.pt"} <= paths

    # Second attempt: resumes on both ranks from that step; SIGTERM to the agent this time.
    second_log = tmp_path / "second.log"
    agent = start_torchrun(config, env, second_log)
    try:
        wait_until(
            lambda: any(s > step + 2 for s in train_steps(second_log)), "training past the resumed step"
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
    later = [r["checkpoint_step"] for r in records if r.get("msg") == "checkpoint committed"]
    assert later == [second_stops[0]] and later[0] > step
