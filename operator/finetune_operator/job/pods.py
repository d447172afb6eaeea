"""Reading a worker pod (and a batch Job's conditions): pure accessors over API objects as dicts.

Several parts of the controller look at the same few pod facts — which worker index a pod is, how
its trainer container ended, whether a condition is set — and each must read them the same way, so
they live here, apart from the decisions made from them (failure_policy, progress status, the
controller's scrape target).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finetune_operator import naming

COMPLETION_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
"""Annotation (and label, on newer clusters) the Job controller sets on an Indexed Job's pods."""


def conditions_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """`status.conditions` of a pod or Job (empty when absent)."""
    return list((obj.get("status") or {}).get("conditions") or [])


def find_condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The condition of type `kind` when its status is "True", else None."""
    for condition in conditions_of(obj):
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def pod_index(pod: dict[str, Any]) -> int | None:
    """The worker index (the Indexed Job's completion index), or None when the pod carries none."""
    metadata = pod.get("metadata") or {}
    value = (metadata.get("annotations") or {}).get(COMPLETION_INDEX_KEY)
    if value is None:
        value = (metadata.get("labels") or {}).get(COMPLETION_INDEX_KEY)
    return int(value) if value is not None and str(value).isdigit() else None


def by_index(pods: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods ordered by worker index, pods without one last."""
    return sorted(pods, key=lambda pod: (pod_index(pod) is None, pod_index(pod) or 0))


def trainer_termination(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The trainer container's `terminated` state (current or last), if it has ended."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != naming.CONTAINER_NAME:
            continue
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            if terminated:
                return terminated
    return None


def pod_label(pod: dict[str, Any]) -> str:
    """'worker 1 (pod x-a1-1)' for messages people read."""
    index = pod_index(pod)
    name = (pod.get("metadata") or {}).get("name", "?")
    return f"worker {index} (pod {name})" if index is not None else f"pod {name}"


def is_deleted(obj: dict[str, Any]) -> bool:
    """The object has a deletionTimestamp (it is going away)."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def phase_of(pod: dict[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("phase")


def worker_summary(pods: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per worker pod of the current attempt: index, pod, node, phase, exit code, reason."""
    summary = []
    for pod in by_index(pods):
        entry: dict[str, Any] = {
            "index": pod_index(pod),
            "pod": (pod.get("metadata") or {}).get("name"),
            "phase": phase_of(pod) or "Unknown",
        }
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            entry["node"] = node
        terminated = trainer_termination(pod)
        if terminated:
            entry["exitCode"] = terminated.get("exitCode")
            if terminated.get("reason"):
                entry["reason"] = terminated["reason"]
        summary.append(entry)
    return summary
