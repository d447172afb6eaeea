"""The pod's entry point `python -m finetune_trainer.launch` keeps D4's exit codes across torchrun.

torchrun alone exits 1 for any worker failure and on SIGTERM; through the launcher a permanent
configuration error exits 78 and a coordinated stop exits 143, each with its one-line termination
message, which is what the operator's failure policy reads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from localcluster.waiting import wait_until

from .test_trainer_torchrun import free_port
from .trainer_helpers import (
    REPO,
    classification_spec,
    json_lines,
    sentiment_records,
    trainer_env,
    write_jsonl,
    write_tiny_bert,
)

GRACE_SECONDS = 90


def launcher(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "finetune_trainer.launch", "--nnodes=1", "--nproc-per-node=2",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}",
        "-m", "finetune_trainer", "--config", str(config),
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_invalid_configuration_exits_78_through_torchrun(tmp_path: Path) -> None:
    spec = classification_spec(
        "file:///nonexistent/model", "file:///nonexistent/train.jsonl", None,
        f"file://{tmp_path}/out", f"file://{tmp_path}/ckpt", learningRate=-1,
    )  # fmt: skip
    config = tmp_path / "job.json"
    config.write_text(json.dumps(spec))
    log = tmp_path / "launch.log"
    process = launcher(config, trainer_env(tmp_path, GLOO_SOCKET_IFNAME="lo"), log)
    assert process.wait(timeout=GRACE_SECONDS) == 78, log.read_text()[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("invalid configuration or data:") and "spec.training.learningRate" in message


def test_sigterm_to_the_launcher_commits_and_exits_143(tmp_path: Path, s3_bucket: str, cluster_env) -> None:
    model = write_tiny_bert(tmp_path / "model")
    write_jsonl(tmp_path / "train.jsonl", sentiment_records(160, seed=3))
    prefix = f"s3://{s3_bucket}/trainer-tests/{uuid.uuid4().hex[:10]}"
    spec = classification_spec(
        f"file://{model}", f"file://{tmp_path}/train.jsonl", None, f"{prefix}/out", f"{prefix}/ckpt",
        maxSteps=100000, scheduler="constant",
    )  # fmt: skip
    spec["training"]["evaluation"] = {"strategy": "no"}
    config = tmp_path / "job.json"
    config.write_text(json.dumps(spec))
    log = tmp_path / "launch.log"
    process = launcher(config, trainer_env(tmp_path, **cluster_env, GLOO_SOCKET_IFNAME="lo"), log)
    try:
        wait_until(
            lambda: any(r.get("msg") == "train log" for r in json_lines(log.read_text())),
            120,
            "the first training step",
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=GRACE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert code == 143, text[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("stopped on SIGTERM at step"), message
    committed = [r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "checkpoint committed"]
    assert committed and message.split()[5] == str(committed[-1])
