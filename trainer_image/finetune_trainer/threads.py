"""How many CPU threads a worker may use: from the pod's CPU limit, not from the node's core count.

Why: torch sizes its intra-op pool (and OpenMP/MKL theirs) from the cores it *sees*, which in a
container is every core of the node. A pod limited to 4 CPUs on a 64-core node then runs 64
threads against a 4-CPU CFS quota and spends its time throttled; two workers on the local process
node each take every core. The limit comes, in this order, from

1. env ``FINETUNE_CPU_LIMIT`` — the operator sets it through the downward API
   (``resourceFieldRef: limits.cpu``, divisor 1: whole CPUs rounded up; without a limit the
   kubelet reports the node's allocatable CPUs, which is what the next steps would find too);
2. the cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up;
3. the CPUs this process may run on (``sched_getaffinity``), then ``os.cpu_count()``.

The pod's share is divided among the processes torchrun starts in it (``--nproc-per-node``). An
explicit ``OMP_NUM_THREADS`` in the pod's environment always wins. The functions that decide are
pure; the readers of env and /sys are small and separate.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from finetune_api.contract import ENV_CPU_LIMIT

log = logging.getLogger(__name__)

CPU_LIMIT_ENV = ENV_CPU_LIMIT
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CpuBudget:
    """The CPUs the pod may use and where that number came from (for the log line)."""

    cpus: int
    source: str


def parse_cpu_quantity(text: str) -> float | None:
    """A Kubernetes CPU quantity ("2", "500m", "1.5") in CPUs; None when it is not one."""
    value = text.strip()
    try:
        if value.endswith("m"):
            return float(value[:-1]) / 1000
        return float(value)
    except ValueError:
        return None


def cgroup_v2_cpus(cpu_max: str) -> float | None:
    """CPUs from cgroup v2 ``cpu.max`` ("200000 100000" -> 2.0; "max 100000" -> no quota)."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_v1_cpus(quota_us: str, period_us: str) -> float | None:
    """CPUs from cgroup v1's quota and period (a quota of -1 means none)."""
    try:
        quota, period = int(quota_us), int(period_us)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def whole_cpus(value: float) -> int:
    """Round a fractional budget up (a 500m pod still needs one thread), at least 1."""
    return max(1, math.ceil(value - 1e-9))


def cpu_budget(env: Mapping[str, str], cgroup_cpus: float | None, visible_cpus: int | None) -> CpuBudget:
    """The pod's CPUs: downward-API limit, else cgroup quota, else the visible CPUs."""
    declared = parse_cpu_quantity(env.get(CPU_LIMIT_ENV, "")) if env.get(CPU_LIMIT_ENV) else None
    if declared is not None and declared > 0:
        return CpuBudget(whole_cpus(declared), f"env {CPU_LIMIT_ENV} (limits.cpu)")
    if cgroup_cpus is not None and cgroup_cpus > 0:
        return CpuBudget(whole_cpus(cgroup_cpus), "cgroup cpu quota")
    return CpuBudget(max(1, visible_cpus or 1), "visible cpus")


def threads_per_process(budget: CpuBudget, processes: int) -> int:
    """Each of the pod's ``processes`` workers gets an equal share, at least one thread."""
    return max(1, budget.cpus // max(1, processes))


def explicit_threads(env: Mapping[str, str]) -> int | None:
    """An ``OMP_NUM_THREADS`` the pod's author set (a positive integer), else None."""
    try:
        value = int(env.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def thread_env(threads: int, env: Mapping[str, str]) -> dict[str, str]:
    """OMP/MKL/OpenBLAS variables for child processes; variables already set are kept."""
    return {name: str(threads) for name in THREAD_ENV_VARS if not env.get(name)}


# ---------------------------------------------------------------------------------------------
# Readers (I/O)


def read_cgroup_cpus(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup (v2, then v1), or None when unlimited/unreadable."""
    try:
        return cgroup_v2_cpus((root / "cpu.max").read_text())
    except OSError:
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            return cgroup_v1_cpus(
                (v1 / "cpu.cfs_quota_us").read_text(), (v1 / "cpu.cfs_period_us").read_text()
            )
        except OSError:
            continue
    return None


def visible_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def detect_budget(env: Mapping[str, str] | None = None) -> CpuBudget:
    source = os.environ if env is None else env
    return cpu_budget(source, read_cgroup_cpus(), visible_cpus())


def configure_torch(
    env: Mapping[str, str] | None = None, set_threads: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Size torch's intra-op pool for this worker; returns (threads, where the number came from).

    A worker under torchrun shares the pod with ``LOCAL_WORLD_SIZE`` processes. The launcher has
    already put the share into ``OMP_NUM_THREADS``; a worker started alone computes it here.
    """
    source = os.environ if env is None else env
    explicit = explicit_threads(source)
    if explicit is not None:
        threads, origin = explicit, "env OMP_NUM_THREADS"
    else:
        budget = detect_budget(source)
        processes = int(source.get("LOCAL_WORLD_SIZE", "1") or 1)
        threads, origin = threads_per_process(budget, processes), budget.source
    if set_threads is None:
        import torch

        set_threads = torch.set_num_threads
    set_threads(threads)
    return threads, origin


def main() -> None:
    """``python -m finetune_trainer.threads``: size this process's pool and print what it got (JSON)."""
    import json

    import torch

    count, origin = configure_torch()
    report = {
        "threads": count,
        "source": origin,
        "torch_threads": torch.get_num_threads(),
        "env": {name: os.environ.get(name) for name in (CPU_LIMIT_ENV, *THREAD_ENV_VARS)},
    }
    print(json.dumps(report, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
