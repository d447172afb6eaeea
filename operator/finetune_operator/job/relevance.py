"""What of a child a pass decides on: a small fingerprint per child, compared on every watch event.

Why (issue 16): a watch event for a child queued its job whenever anything but the resourceVersion
changed, and most of a pod's or Job's updates change nothing the rules read: the Job's counters
(`active`, `ready`, `terminating`, `uncountedTerminatedPods`), a pod's node binding before it runs,
readiness flips, condition timestamps, IP churn of a pod that is not rank 0. Each such event cost a
full pass (and at a thousand jobs, a dozen passes per job). The informer now calls the controller
only when the fingerprint changes; the stored object is still replaced on every event, so a pass
that runs for another reason always reads the newest object (level-triggered, D8).

The fingerprints list exactly what `failure_policy.classify_attempt`, `reconcile` and the progress
scrape read; a field a rule starts reading must be added here (tests/unit/test_child_relevance.py
checks the fields the rules read one by one). `status.workers` shows each pod's node and phase: a
binding alone does not queue a pass, and the next pass that runs (the pod's Running, at the latest)
writes it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

IGNORED_POD_CONDITIONS = frozenset({"Ready", "ContainersReady", "Initialized", "PodReadyToStartContainers"})
"""Pod conditions no rule reads (readiness and startup bookkeeping)."""


def _deleting(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _conditions(obj: dict[str, Any], ignored: frozenset[str] = frozenset()) -> tuple[Hashable, ...]:
    """(type, status, reason, message) of each condition, without their timestamps."""
    return tuple(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in (obj.get("status") or {}).get("conditions") or ()
        if c.get("type") not in ignored
    )


def _terminations(status: dict[str, Any]) -> tuple[tuple[Any, ...], ...]:
    """Each container's state kind and, once terminated, its exit code, reason and message."""
    found = []
    for container in status.get("containerStatuses") or ():
        state = container.get("state") or {}
        terminated = state.get("terminated") or {}
        found.append(
            (
                container.get("name"),
                next(iter(state), None),
                terminated.get("exitCode"),
                terminated.get("reason"),
                terminated.get("message"),
            )
        )
    return tuple(found)


def pod_fingerprint(pod: dict[str, Any] | None) -> Hashable:
    """What the rules read of a worker pod. A pod just created (Pending, nothing else known) has the
    same fingerprint as no pod at all: its appearance changes no decision, its running does."""
    if pod is None:
        return FRESH_POD
    status = pod.get("status") or {}
    terminations = _terminations(status)
    if (
        status.get("phase", "Pending") == "Pending"
        and not _deleting(pod)
        and not status.get("reason")
        and not any(kind == "terminated" for _, kind, *_ in terminations)
        and all(c[:2] == ("PodScheduled", "True") for c in _conditions(pod, IGNORED_POD_CONDITIONS))
    ):
        return FRESH_POD  # created, maybe bound, containers starting: nothing a rule reads yet
    return (
        _deleting(pod),
        status.get("phase"),
        status.get("reason"),
        status.get("message"),
        status.get("podIP"),
        _conditions(pod, IGNORED_POD_CONDITIONS),
        terminations,
    )


FRESH_POD: Hashable = ("fresh",)


def job_fingerprint(job: dict[str, Any] | None) -> Hashable:
    """What the rules read of an attempt's batch/v1 Job: being deleted, suspended, its conditions
    (Complete, Failed, FailureTarget, SuccessCriteriaMet, Suspended), never its counters."""
    if job is None:
        return None
    return (_deleting(job), bool((job.get("spec") or {}).get("suspend")), _conditions(job))


def presence_fingerprint(obj: dict[str, Any] | None) -> Hashable:
    """Services and ConfigMaps: only whether they exist (and are not being deleted) matters."""
    if obj is None:
        return None
    return (_deleting(obj),)


POD_STATUS_KEPT = ("phase", "reason", "message", "podIP", "conditions")
CONTAINER_KEPT = ("name", "state", "lastState")


def trim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """A cached pod holds only what the rules, the fingerprint and status.workers read: the
    container images and IDs, host IPs, QoS class and the like were a third of each cached pod
    (issue 16, operator RSS). Applied after the informer's own trim (informer.trim)."""
    status = pod.get("status")
    if not status:
        return pod
    kept = {key: status[key] for key in POD_STATUS_KEPT if key in status}
    containers = [
        {key: container[key] for key in CONTAINER_KEPT if container.get(key)}
        for container in status.get("containerStatuses") or ()
    ]
    if containers:
        kept["containerStatuses"] = containers
    return {**pod, "status": kept}


TRIMS = {"pods": trim_pod}
"""Per-kind trims on top of informer.trim; the other kinds are small already."""

FINGERPRINTS = {
    "pods": pod_fingerprint,
    "jobs": job_fingerprint,
    "services": presence_fingerprint,
    "configmaps": presence_fingerprint,
}
