"""Kueue's own words about a queued attempt, read from the Workload it made for the attempt's Job.

Why: a Job that Kueue holds back only says "Job suspended" (the Job controller's words); the reason
(not enough quota, which flavor, preempted by whom) is on the Workload Kueue owns for that Job. The
operator copies it into the FineTuneJob's Suspended condition, so `kubectl get finetunejob` answers
"why is my job not running" without knowing about Workloads.

The Workload is found by the label Kueue puts on it, ``kueue.x-k8s.io/job-uid=<Job uid>``, with one
list call (`Kube.kueue_workloads`) at most every QUEUE_RECHECK_SECONDS per queued job, or when its
Job changes (RBAC: get/list on workloads.kueue.x-k8s.io). Without Kueue's
CRD, or without that permission, the operator keeps the Job's own words: reading Kueue is
best-effort and never blocks a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finetune_operator import naming

QUEUE_RECHECK_SECONDS = 10.0
"""A queued job's Workload is read again after this long: Kueue's changes to it (quota freed,
preemption decided) bring no event of ours, and Kueue's message must not go stale for long."""


def queued_job(jobs: Mapping[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The newest attempt Job when it waits for Kueue: suspended, labelled with a queue, not deleted."""
    if not jobs:
        return None
    job = jobs[max(jobs)]
    metadata = job.get("metadata") or {}
    if metadata.get("deletionTimestamp") or not (job.get("spec") or {}).get("suspend"):
        return None
    if not (metadata.get("labels") or {}).get(naming.LABEL_KUEUE_QUEUE):
        return None
    return job


def _condition(workload: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (workload.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind:
            return condition
    return None


def admission_words(workloads: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(reason, message) for our Suspended condition from Kueue's Workload conditions, else None.

    In the order that explains most: an eviction (preempted, or its admission check failed) with its
    reason; a quota reservation that failed (``QuotaReserved=False``: which resource is short, in which
    flavor); an admission still pending (``Admitted=False``); the Workload exists but Kueue has not
    judged it yet. The message names the Workload so users can ``kubectl describe`` it.
    """
    if not workloads:
        return None
    workload = workloads[0]
    name = (workload.get("metadata") or {}).get("name") or "?"
    evicted = _condition(workload, "Evicted")
    if evicted and evicted.get("status") == "True":
        return evicted.get("reason") or "Evicted", f"Kueue (workload {name}): {evicted.get('message') or ''}"
    for kind in ("QuotaReserved", "Admitted"):
        condition = _condition(workload, kind)
        if condition and condition.get("status") == "False" and condition.get("message"):
            return (
                condition.get("reason") or "Pending",
                f"Kueue (workload {name}): {condition['message']}",
            )
    return "Pending", f"Kueue (workload {name}): waiting for Kueue to consider the workload"
