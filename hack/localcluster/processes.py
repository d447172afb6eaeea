"""Start, find and stop the cluster's daemons, each identified by a pid file.

Why pid files with a start time: `up` runs in one process (the CLI, or a pytest session) and
`down` in another, so the daemons are started in their own session (they outlive the starter)
and recorded under ``<state>/run/<name>.pid``. The recorded process start time guards against a
recycled pid: `down` never signals a process it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from localcluster.waiting import WaitTimeout, wait_until


@dataclass(frozen=True)
class DaemonSpec:
    """How to run one long-lived process of the cluster."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def _pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def log_path(log_dir: Path, name: str) -> Path:
    return log_dir / f"{name}.log"


def running_process(run_dir: Path, name: str) -> psutil.Process | None:
    """The live process recorded for ``name``, or None (stale pid files are removed)."""
    pid_file = _pid_file(run_dir, name)
    try:
        record = json.loads(pid_file.read_text())
        process = psutil.Process(record["pid"])
        if abs(process.create_time() - record["create_time"]) < 0.5 and process.status() != "zombie":
            return process
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, psutil.Error):
        pass
    pid_file.unlink(missing_ok=True)
    return None


def start_daemon(spec: DaemonSpec, run_dir: Path, log_dir: Path) -> psutil.Process:
    """Start ``spec`` detached from the caller, output appended to ``<log_dir>/<name>.log``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **spec.env}
    with open(log_path(log_dir, spec.name), "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(spec.argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    process = psutil.Process(popen.pid)
    record = {"pid": popen.pid, "create_time": process.create_time(), "argv": list(spec.argv)}
    _pid_file(run_dir, spec.name).write_text(json.dumps(record))
    return process


def exited_early(process: psutil.Process) -> bool:
    """True when a daemon we just started is already gone (it failed to start)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE or not process.is_running()
    except psutil.NoSuchProcess:
        return True


def stop_daemons(run_dir: Path, names: Sequence[str], grace: float = 10.0) -> list[str]:
    """SIGTERM the named daemons together (each its whole process group), SIGKILL those still
    running after ``grace`` s; return the names that were running."""
    running = {name: p for name in names if (p := running_process(run_dir, name)) is not None}
    for process in running.values():
        _signal_group(process, signal.SIGTERM)
    for name, process in running.items():
        try:
            wait_until(lambda p=process: not _alive(p), grace, f"{name} to exit after SIGTERM", poll=0.05)
        except WaitTimeout:
            _signal_group(process, signal.SIGKILL)
            wait_until(lambda p=process: not _alive(p), 10, f"{name} to exit after SIGKILL", poll=0.05)
        _pid_file(run_dir, name).unlink(missing_ok=True)
    return list(running)


def stop_daemon(run_dir: Path, name: str, grace: float = 10.0) -> bool:
    """Stop one daemon (see :func:`stop_daemons`). True if it was running."""
    return bool(stop_daemons(run_dir, [name], grace))


def _alive(process: psutil.Process) -> bool:
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            process.wait(0)  # reap it when it is our own child
            return False
        return process.is_running()
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        return False


def _signal_group(process: psutil.Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the daemon leads its own session and group
    except ProcessLookupError:
        pass
    except PermissionError:
        process.send_signal(sig)


def log_tail(log_dir: Path, name: str, lines: int = 15) -> str:
    """The last lines of a daemon's log, for error messages."""
    try:
        text = log_path(log_dir, name).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0
