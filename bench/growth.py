"""How a benchmark figure grows with N: the slope of a log-log least-squares fit (pure).

Why apart: issue 16 asks whether the operator's per-job cost stays flat as N grows; the fit is
plain arithmetic over the results of bench/peer_training_operator.py, kept out of its I/O.
"""

from __future__ import annotations

import math
from typing import Any


def loglog_slope(sizes: list[int], values: list[float | None]) -> float | None:
    """Least-squares slope of log(value) over log(size): 0 means flat per job, 1 linear in N."""
    points = [(math.log(n), math.log(v)) for n, v in zip(sizes, values, strict=True) if v and v > 0]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return round(sum((x - mean_x) * (y - mean_y) for x, y in points) / spread, 2)


def growth_exponents(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """How each per-job figure grows with N: the slope b of log(figure) = a + b log(N) (0 = flat)."""
    fits: dict[str, Any] = {}
    finished = [size for size in sizes if "error" not in size]
    for who in ("ours", "peer"):
        runs = [size for size in finished if who in size]
        if len(runs) < 2:
            continue
        fits[who] = {
            figure: loglog_slope(
                [size["jobs"] for size in runs], [size[who]["operator"][figure] for size in runs]
            )
            for figure in ("apiRequestsPerJob", "cpuSecondsPerJob", "peakRssMiB")
        }
        fits[who]["applyToPodsRunningTotal"] = loglog_slope(
            [size["jobs"] for size in runs],
            [size[who]["applyToPodsRunning"]["totalSeconds"] for size in runs],
        )
        fits[who]["podsSucceededToDoneP99"] = loglog_slope(
            [size["jobs"] for size in runs],
            [size[who]["podsSucceededToDone"]["perJobSeconds"]["p99"] for size in runs],
        )
        if who == "ours":
            fits[who]["reconcilePassesPerJob"] = loglog_slope(
                [size["jobs"] for size in runs],
                [size[who]["operator"].get("reconcilePassesPerJob") for size in runs],
            )
    return fits
