"""Exit codes and the termination message: the failure contract with the operator (D4).

The operator tells a permanent failure (bad configuration or data: restarting cannot help) from a
retryable one only by the exit code, and shows the user the one-line reason we write to the
container's termination-message file. Keeping both here makes the contract one import away for
every other module.
"""

from __future__ import annotations

import json
import os

EXIT_OK = 0
EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: invalid configuration or data, permanent
EXIT_PREEMPTED = 143  # 128 + SIGTERM: stopped on request after committing a checkpoint
EXIT_FAILURE = 1  # anything else: retryable

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# Set by `finetune_trainer.launch` (the pod's entry point around torchrun): each worker records its
# exit code and message here, because torchrun itself exits 1 for any worker failure.
EXIT_RECORD_DIR_ENV = "FINETUNE_EXIT_RECORD_DIR"
# Kubernetes truncates termination messages at 4096 bytes; keep ours well below.
MAX_MESSAGE_CHARS = 1024


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
    if len(flat) > MAX_MESSAGE_CHARS:
        flat = flat[: MAX_MESSAGE_CHARS - 3] + "..."
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
    path = os.environ.get("FINETUNE_TERMINATION_LOG", DEFAULT_TERMINATION_LOG)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(one_line(message) + "\n")
    except OSError:
        # Outside a container /dev/termination-log usually is not writable: the log line suffices.
        pass
