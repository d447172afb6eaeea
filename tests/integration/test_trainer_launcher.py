"""The pod's entry point `python -m finetune_trainer.launch` keeps the exit codes of
docs/architecture.md ("Exit-code contract") across torchrun.

torchrun alone exits 1 for any worker failure and on SIGTERM; through the launcher a permanent
configuration error exits 78 and a coordinated stop exits 143, each with its one-line termination
message, which is what the operator's failure policy reads.
"""

from __future__ import annotations

import signal
from pathlib import Path

from finetune_testkit.trainer_helpers import (
    classification_spec,
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

GRACE_SECONDS = 90
LAUNCHER = "finetune_trainer.launch"


def test_invalid_configuration_exits_78_through_torchrun(tmp_path: Path) -> None:
    spec = classification_spec(
        "file:///nonexistent/model", "file:///nonexistent/train.jsonl", None,
        f"file://{tmp_path}/out", f"file://{tmp_path}/ckpt", learningRate=-1,
    )  # fmt: skip
    config = write_config(tmp_path / "job.json", spec)
    log = tmp_path / "launch.log"
    process = start_distributed(LAUNCHER, config, trainer_env(tmp_path, GLOO_SOCKET_IFNAME="lo"), log)
    assert process.wait(timeout=GRACE_SECONDS) == 78, log.read_text()[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("invalid configuration or data:") and "spec.training.learningRate" in message


def test_sigterm_to_the_launcher_commits_and_exits_143(tmp_path: Path, s3_bucket: str, cluster_env) -> None:
    model, train = tiny_classification_files(tmp_path, seed=3)
    spec = until_stopped_spec(model, train, s3_test_prefix(s3_bucket))
    config = write_config(tmp_path / "job.json", spec)
    log = tmp_path / "launch.log"
    env = trainer_env(tmp_path, **cluster_env, GLOO_SOCKET_IFNAME="lo")
    process = start_distributed(LAUNCHER, config, env, log)
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
    committed = committed_steps(text)
    assert committed and message.split()[5] == str(committed[-1])
