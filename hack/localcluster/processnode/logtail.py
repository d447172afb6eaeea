"""Termination messages: the container's message file, or the tail of its log.

Why separate: the limits are kubelet behaviour users rely on (a message is at most 4096 bytes;
FallbackToLogsOnError takes the last 80 lines, at most 2048 bytes, of this run's log).
"""

from __future__ import annotations

from pathlib import Path

MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


def read_termination_message(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        return ""


def tail_text(data: bytes, lines: int = FALLBACK_LINES, limit: int = FALLBACK_BYTES) -> str:
    """The last ``lines`` lines of ``data``, cut to the last ``limit`` bytes."""
    kept = b"\n".join(data.rstrip(b"\n").split(b"\n")[-lines:])
    return kept[-limit:].decode(errors="replace")


def fallback_message(log_path: Path, offset: int) -> str:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            return tail_text(handle.read())
    except OSError:
        return ""
