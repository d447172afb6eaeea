"""Exit codes and the termination message: the failure contract with the operator.

The operator tells a permanent failure (bad configuration or data: restarting cannot help) from a
retryable one only by the exit code, and shows the user the one-line reason we write to the
container's termination-message file. The codes and names come from ``finetune_api.contract``
(which the operator imports too; docs/architecture.md, "Exit-code contract"); this module adds the
trainer's half: the exceptions and writing the message.
"""

from __future__ import annotations

import json
import os

from finetune_api.contract import (
    ENV_TERMINATION_LOG,
    EXIT_INVALID_CONFIG,
    TERMINATION_LOG_PATH,
    TERMINATION_MESSAGE_MAX_CHARS,
)

# The other exit codes, re-exported (explicit `as`) so the trainer's modules import them from here.
from finetune_api.contract import EXIT_FAILURE as EXIT_FAILURE
from finetune_api.contract import EXIT_OK as EXIT_OK
from finetune_api.contract import EXIT_PREEMPTED as EXIT_PREEMPTED

EXIT_CONFIG = EXIT_INVALID_CONFIG
"""The trainer's name for the permanent code (raised as ConfigError)."""

# Set by `finetune_trainer.launch` (the pod's entry point around torchrun): each worker records its
# exit code and message here, because torchrun itself exits 1 for any worker failure.
EXIT_RECORD_DIR_ENV = "FINETUNE_EXIT_RECORD_DIR"


class ConfigError(Exception):
    """Invalid configuration or data: the job cannot succeed by restarting (exit 78).

    The message must name the field or the file and say what to do.
    """


class Preempted(Exception):
    """Training stopped on SIGTERM after the stop checkpoint was committed (exit 143)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped on SIGTERM at step {step} after committing checkpoint-{step}")
        self.step = step


def one_line(message: str) -> str:
    """Collapse a message onto one line and bound its length for the termination log."""
    flat = " ".join(message.split())
    if len(flat) > TERMINATION_MESSAGE_MAX_CHARS:
        flat = flat[: TERMINATION_MESSAGE_MAX_CHARS - 3] + "..."
    return flat


def record_exit(code: int, message: str) -> None:
    """Tell the launcher how this worker ended (one JSON file per global rank); never fail."""
    directory = os.environ.get(EXIT_RECORD_DIR_ENV)
    if not directory:
        return
    rank = os.environ.get("RANK", "0")
    try:
        with open(os.path.join(directory, f"rank-{rank}.json"), "w", encoding="utf-8") as handle:
            json.dump({"rank": int(rank), "code": code, "message": one_line(message)}, handle)
    except (OSError, ValueError):
        pass


def finish(code: int, message: str, *, to_termination_log: bool = True) -> int:
    """Record how this worker ends (launcher record and termination message); returns `code`."""
    record_exit(code, message)
    if to_termination_log and message:
        write_termination_message(message)
    return code


def write_termination_message(message: str) -> None:
    """Write the one-line reason where the kubelet reads it; never fail because of it."""
    path = os.environ.get(ENV_TERMINATION_LOG, TERMINATION_LOG_PATH)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(one_line(message) + "\n")
    except OSError:
        # Outside a container /dev/termination-log usually is not writable: the log line suffices.
        pass
