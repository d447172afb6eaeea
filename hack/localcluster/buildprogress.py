"""Run a long build command and say how far along it is while it runs.

Why: the first `make demo` or `make test` on a fresh machine spends minutes in `go build`; a wait
with no output looks like a hang. Each build gets a start line, a "still building" line every
``interval`` seconds with the elapsed time, and a final line with its duration (or the tail of
its error output). Output goes to the ``localcluster`` logger, which the CLI prints to stderr.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 30.0


@dataclass(frozen=True)
class BuildResult:
    """Exit status, the last of the command's error output, and the wall time it took."""

    returncode: int
    stderr_tail: str
    seconds: float


def progress_line(label: str, elapsed: float, done: bool, ok: bool = True) -> str:
    """One human line about a build: ``building kueue v0.19.2 … 60s`` or ``built … in 61s``."""
    if not done:
        return f"  still building {label} … {elapsed:.0f}s so far"
    return f"  built {label} in {elapsed:.0f}s" if ok else f"  FAILED building {label} after {elapsed:.0f}s"


def run_build(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    label: str,
    position: str = "",
    interval: float = PROGRESS_INTERVAL_SECONDS,
) -> BuildResult:
    """Run ``argv`` to completion, logging progress every ``interval`` seconds; never raises on failure."""
    prefix = f"[{position}] " if position else ""
    log.info("%sbuilding %s (one-time; minutes on a fresh machine)", prefix, label)
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
        while True:
            try:
                process.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                log.info("%s%s", prefix, progress_line(label, time.monotonic() - started, done=False))
        stderr.seek(0)
        tail = stderr.read()[-3000:]
    seconds = round(time.monotonic() - started, 1)
    log.info("%s%s", prefix, progress_line(label, seconds, done=True, ok=process.returncode == 0))
    return BuildResult(returncode=process.returncode, stderr_tail=tail, seconds=seconds)
