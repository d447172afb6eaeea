"""Turn the milestone times of one operator-scale run into per-job and total durations.

Why pure: the same arithmetic serves the operator run and its floor (plain Indexed Jobs), so the
ratio compares like with like; and it is unit-tested without a cluster.

Inputs are ``time.monotonic()`` values keyed as the watches record them: pods by
``<job>-a1/<index>``, Jobs by ``<job>-a1``, FineTuneJobs (or floor Jobs) by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.stats import summarize


def job_of(key: str) -> str:
    """``reviews-007-a1/2`` or ``reviews-007-a1`` -> ``reviews-007`` (the FineTuneJob's name)."""
    job = key.split("/", 1)[0]
    stem, _, attempt = job.rpartition("-a")
    return stem if stem and attempt.isdigit() else job


def latest_per_job(times: Mapping[str, float], expected: Mapping[str, int] | None = None) -> dict[str, float]:
    """The last time per job over all of its keys (e.g. its last pod); with ``expected`` (keys per
    job), only jobs that have all their keys (a job with 2 of its 3 pods has not finished)."""
    latest: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, at in times.items():
        job = job_of(key)
        latest[job] = max(latest.get(job, at), at)
        counts[job] = counts.get(job, 0) + 1
    if expected is None:
        return latest
    return {job: at for job, at in latest.items() if counts[job] >= expected.get(job, 1)}


def phase_durations(
    started: Mapping[str, float], finished: Mapping[str, float], origin: float | None = None
) -> dict[str, object]:
    """Per job ``finished[job] - started[job]`` (p50/p99...), and the whole phase: last finish minus
    ``origin`` (default: the earliest start). Jobs missing from ``finished`` are counted in ``missing``."""
    samples = [finished[job] - started[job] for job in started if job in finished]
    missing = sorted(set(started) - set(finished))
    begin = origin if origin is not None else (min(started.values()) if started else None)
    total = max(finished.values()) - begin if finished and begin is not None else None
    return {
        "perJobSeconds": summarize(samples),
        "totalSeconds": round(total, 3) if total is not None else None,
        "missing": len(missing),
    }


def scale_phases(
    applied: Mapping[str, float],
    workers: Mapping[str, int],
    jobs_created: Mapping[str, float],
    pods_created: Mapping[str, float],
    pods_running: Mapping[str, float],
    pods_succeeded: Mapping[str, float],
    done: Mapping[str, float],
) -> dict[str, object]:
    """The benchmark's phases from raw milestone times (see module docstring for keys);
    ``workers`` is the number of pods each job must have."""
    t0 = min(applied.values())
    pods = latest_per_job(pods_created, workers)
    children = {job: max(at, pods[job]) for job, at in latest_per_job(jobs_created).items() if job in pods}
    last_pod_succeeded = latest_per_job(pods_succeeded, workers)
    all_succeeded = max(pods_succeeded.values()) if pods_succeeded else None
    return {
        "applyToChildrenCreated": phase_durations(applied, children, t0),
        "applyToPodsRunning": phase_durations(applied, latest_per_job(pods_running, workers), t0),
        "podsSucceededToDone": phase_durations(last_pod_succeeded, done, all_succeeded),
    }
