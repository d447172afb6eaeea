"""Finding and signalling every process of a container, including ones that left its group.

Why more than ``killpg``: torchrun (and other launchers) start children in new sessions, so
the container's process group does not hold all of its processes. Every container process is
started with ``PROCESSNODE_CONTAINER=<uid>/<name>`` in its environment, which children inherit;
scanning /proc for it finds them all, also after the process node itself restarted.

SIGTERM goes to the container's process group (the main process and whatever shares its group,
which covers ``sh -c`` wrappers); SIGKILL goes to the group and to every marked process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from localcluster.processnode.launcher import MARKER_ENV

_PROC = Path("/proc")


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a pid from a later process that reused it."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def marked_pids(prefix: str) -> list[int]:
    """Pids whose environment carries a marker starting with ``prefix`` (``uid/`` or ``uid/name``)."""
    needle = f"{MARKER_ENV}={prefix}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_everything(prefix: str, pgids: list[int]) -> None:
    """SIGKILL the given process groups and every process marked with ``prefix``."""
    for pgid in pgids:
        signal_group(pgid, signal.SIGKILL)
    for pid in marked_pids(prefix):
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def any_alive(prefix: str) -> bool:
    return bool(marked_pids(prefix))
