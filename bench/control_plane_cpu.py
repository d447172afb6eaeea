"""CPU seconds each part of the local cluster spends in a measured window: where a phase's time goes.

Why: on a 2-core machine the apply -> Running phase of the scale benchmarks keeps every core busy
(API server, etcd, controller-manager, scheduler, KWOK, the benchmark's own client and watches,
the operator under test). Its wall time then follows the CPU the whole system spends, so the ratio
to the floor is a ratio of CPU, and the per-component split says which part of it a change would
have to cut (issue 16). Read from /proc of the processes the local cluster records in
``.cluster/run/<component>.pid`` (``localcluster.processes``); the operator's own figure comes from
its harness.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from localcluster.processes import running_process

COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")
BENCH_CLIENT = "bench-client"
"""This process: the benchmark's creates and its watches, which the floor pays too."""


def stat_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (fields 14 and 15; the command name,
    field 2, may hold spaces and parentheses, so fields are counted after its last ')')."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def process_cpu_seconds(pid: int) -> float | None:
    """A process's CPU seconds so far; None when it is gone or unreadable."""
    try:
        return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def component_pids(run_dir: Path) -> dict[str, int]:
    """The local cluster's component processes, from their pid files (missing ones left out)."""
    processes = {component: running_process(run_dir, component) for component in COMPONENTS}
    return {component: process.pid for component, process in processes.items() if process is not None}


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Seconds per component between two snapshots, and their total (components in both only)."""
    seconds = {name: round(after[name] - before[name], 2) for name in after if name in before}
    seconds["total"] = round(sum(seconds.values()), 2)
    return seconds


class CpuMeter:
    """Snapshots of CPU seconds: the cluster's components, this process, and extra sources."""

    def __init__(self, run_dir: Path):
        self.pids = {**component_pids(run_dir), BENCH_CLIENT: os.getpid()}
        self.sources: dict[str, Callable[[], float]] = {}

    def add(self, name: str, cpu_seconds: Callable[[], float]) -> None:
        """Count another process (the operator under test) through its harness's own reading."""
        self.sources[name] = cpu_seconds

    def snapshot(self) -> dict[str, float]:
        readings = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        snapshot = {name: value for name, value in readings.items() if value is not None}
        for name, read in self.sources.items():
            snapshot[name] = read()
        return snapshot
