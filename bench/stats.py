"""Percentiles, summaries and ratios of measured durations.

Why our own few lines: the benchmarks report p50/p99 of a few hundred samples and ratios against a
floor measured in the same run; numpy's default (linear interpolation between closest ranks) is the
definition used here too, written out so the JSON does not depend on numpy's version and so the
unit tests pin it down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values: the benchmark recorded no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Iterable[float], digits: int = 3) -> dict[str, float | int | None]:
    """Count, p50, p99, min, max and mean of ``values`` (None for each statistic when empty)."""
    samples = list(values)
    if not samples:
        return {"n": 0, "p50": None, "p99": None, "min": None, "max": None, "mean": None}
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), digits),
        "p99": round(percentile(samples, 99), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "mean": round(sum(samples) / len(samples), digits),
    }


def ratio(measured: float | None, floor: float | None, digits: int = 2) -> float | None:
    """``measured / floor``, or None when either is missing or the floor is not positive."""
    if measured is None or floor is None or floor <= 0:
        return None
    return round(measured / floor, digits)


def per_second(count: float, seconds: float | None, digits: int = 3) -> float | None:
    """A rate, or None when no time elapsed."""
    if seconds is None or seconds <= 0:
        return None
    return round(count / seconds, digits)
