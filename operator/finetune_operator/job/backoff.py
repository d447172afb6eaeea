"""Exponential backoff between a failed attempt and the next one.

base * 2^(failures - 1), capped: the first retry waits `base`, then 2·base, 4·base, ... so a job that
fails at start-up does not hammer the cluster (image pulls, GPU allocation) while a one-off failure
restarts quickly. Disruptions (preemption, eviction) restart without backoff: they are not the job's fault.
"""

from __future__ import annotations


def restart_delay_seconds(failures: int, base_seconds: float, cap_seconds: float) -> float:
    """Seconds to wait before the attempt that follows the `failures`-th counted failure."""
    if failures <= 0 or base_seconds <= 0:
        return 0.0
    exponent = min(failures - 1, 62)  # 2**62 already exceeds any sensible cap
    return float(min(cap_seconds, base_seconds * (2**exponent)))
