"""What happened to one attempt, judged from its Job and its pods.

The exit codes are the contract of docs/architecture.md, "Exit-code contract"
(`finetune_api.contract`); the pod readers are in `pods`.

The verdict decides whether the gang restarts and whether the restart counts against maxRestarts:

| verdict      | evidence                                                       | operator does             |
|--------------|----------------------------------------------------------------|---------------------------|
| permanent    | a worker exited 78 (invalid configuration or data)             | Failed at once            |
| disrupted    | DisruptionTarget, eviction, node loss, pod deleted by others   | restart, not counted      |
| retryable    | any other non-zero exit, a failed Job, or an eviction for      | restart after backoff     |
|              | exceeding the pod's own ephemeral-storage/emptyDir limit       |                           |
| succeeded    | the Job completed (every index succeeded)                      | Succeeded                 |
| queued       | the Job is suspended (Kueue has not admitted it)               | Suspended (Kueue's words) |
| unschedulable| a pod is Pending with PodScheduled=False/Unschedulable         | says so in status         |
| running      | every worker pod is Running                                    | Running                   |
| starting     | anything else (pods being created, pulled, scheduled)          | wait                      |

Evidence on pods is preferred (it carries the termination message); the Job's Failed condition set by
its podFailurePolicy is the fallback once the pods are gone.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

from finetune_api.contract import EXIT_INVALID_CONFIG
from finetune_operator import reasons
from finetune_operator.job.builders import RULE_DISRUPTION, RULE_INVALID_CONFIG
from finetune_operator.job.pods import (
    by_index,
    conditions_of,
    find_condition,
    is_deleted,
    pod_index,
    pod_label,
    trainer_termination,
)

DISRUPTION_POD_REASONS = frozenset(
    {"Evicted", "Preempting", "NodeLost", "Shutdown", "Terminated", "NodeShutdown"}
)

# The kubelet's eviction messages when a pod outgrows its *own* storage limits (pkg/kubelet/eviction,
# helpers.go): the container's ephemeral-storage limit, the pod's total, an emptyDir's sizeLimit.
# Such a pod is "Evicted" like a victim of node pressure, but the job caused it and would cause it
# again, so it is a counted failure (docs/architecture.md, "Exit-code contract").
STORAGE_LIMIT_EVICTION_MARKERS = (
    "exceeded its local ephemeral storage limit",
    "ephemeral local storage usage exceeds the total limit",
    "Usage of EmptyDir volume",
)


class Verdict(enum.StrEnum):
    PERMANENT = "permanent"
    DISRUPTED = "disrupted"
    RETRYABLE = "retryable"
    SUCCEEDED = "succeeded"
    QUEUED = "queued"
    UNSCHEDULABLE = "unschedulable"
    RUNNING = "running"
    STARTING = "starting"

    @property
    def ended(self) -> bool:
        """The attempt is over (its pods are finished or going); the next step is the job's, not the pods'."""
        return self in (Verdict.PERMANENT, Verdict.DISRUPTED, Verdict.RETRYABLE, Verdict.SUCCEEDED)


@dataclasses.dataclass(frozen=True)
class AttemptOutcome:
    verdict: Verdict
    reason: str
    message: str
    worker: int | None = None
    exit_code: int | None = None


def storage_limit_eviction(pod: dict[str, Any]) -> str | None:
    """The kubelet's message when it evicted the pod for exceeding its own storage limit, else None.

    The kubelet writes status.reason "Evicted" and one of the STORAGE_LIMIT_EVICTION_MARKERS messages;
    node-pressure evictions ("The node was low on resource: ...") are not matched.
    """
    status = pod.get("status") or {}
    messages = [status.get("message") or ""]
    messages += [c.get("message") or "" for c in conditions_of(pod)]
    if status.get("reason") != reasons.POD_EVICTED and not any(
        c.get("reason") in (reasons.TERMINATION_BY_KUBELET, reasons.EVICTION_BY_KUBELET)
        for c in conditions_of(pod)
    ):
        return None
    for message in messages:
        if any(marker in message for marker in STORAGE_LIMIT_EVICTION_MARKERS):
            return message.strip()
    return None


def disruption_of(pod: dict[str, Any]) -> str | None:
    """Why the pod was disrupted by someone else than its own program (preemption, eviction, node loss)."""
    if storage_limit_eviction(pod) is not None:
        return None  # the job outgrew its own scratch space: a failure, not a disruption
    status = pod.get("status") or {}
    target = find_condition(pod, "DisruptionTarget")
    if target is not None:
        detail = target.get("message") or target.get("reason") or "DisruptionTarget"
        return f"{pod_label(pod)} was disrupted: {detail}"
    if status.get("reason") in DISRUPTION_POD_REASONS:
        detail = status.get("message") or status["reason"]
        return f"{pod_label(pod)} was stopped by the node: {detail}"
    return None


def _unschedulable_message(pods: Sequence[dict[str, Any]]) -> str | None:
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Pending":
            continue
        for condition in conditions_of(pod):
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == reasons.UNSCHEDULABLE
            ):
                return f"{pod_label(pod)} cannot be scheduled: {condition.get('message') or 'Unschedulable'}"
    return None


def _failed_exit(pod: dict[str, Any]) -> tuple[int | None, str]:
    terminated = trainer_termination(pod)
    if terminated is None:
        return None, ""
    message = (terminated.get("message") or "").strip().splitlines()
    return terminated.get("exitCode"), (message[-1] if message else terminated.get("reason") or "")


def classify_attempt(job: dict[str, Any], pods: Sequence[dict[str, Any]], workers: int) -> AttemptOutcome:
    """The verdict on one attempt from its batch/v1 Job and that Job's pods (see the module table)."""
    job_deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    ordered = by_index(pods)

    for pod in ordered:
        code, message = _failed_exit(pod)
        if code == EXIT_INVALID_CONFIG:
            return AttemptOutcome(
                Verdict.PERMANENT,
                reasons.INVALID_CONFIGURATION,
                message or f"{pod_label(pod)} exited with code {code} (invalid configuration or data)",
                worker=pod_index(pod),
                exit_code=code,
            )
    for pod in ordered:
        evicted = storage_limit_eviction(pod)
        if evicted is not None:
            return AttemptOutcome(
                Verdict.RETRYABLE,
                reasons.EPHEMERAL_STORAGE_EXCEEDED,
                f"{pod_label(pod)} was evicted for using more local storage than it may: {evicted} "
                "Raise spec.resources.ephemeralStorage (the worker's scratch space) or write less to it",
                worker=pod_index(pod),
            )
    for pod in ordered:
        disruption = disruption_of(pod)
        if disruption:
            return AttemptOutcome(Verdict.DISRUPTED, reasons.DISRUPTED, disruption, worker=pod_index(pod))

    failed = find_condition(job, "Failed") or find_condition(job, "FailureTarget")
    if failed is not None and failed.get("reason") == reasons.POD_FAILURE_POLICY:
        text = failed.get("message") or ""
        if f"rule at index {RULE_INVALID_CONFIG}" in text:
            return AttemptOutcome(
                Verdict.PERMANENT, reasons.INVALID_CONFIGURATION, text, exit_code=EXIT_INVALID_CONFIG
            )
        if f"rule at index {RULE_DISRUPTION}" in text:
            return AttemptOutcome(Verdict.DISRUPTED, reasons.DISRUPTED, text)

    # A worker that failed on its own is the root cause; pods deleted afterwards (by the Job controller,
    # once the Job failed) are consequences. A pod deleted by someone else while the Job was healthy
    # (kubectl delete, a drain without the eviction API) is a disruption.
    for pod in ordered:
        code, message = _failed_exit(pod)
        phase = (pod.get("status") or {}).get("phase")
        if is_deleted(pod) or not ((code is not None and code != 0) or phase == "Failed"):
            continue
        detail = (
            f"{pod_label(pod)} exited with code {code}" if code is not None else f"{pod_label(pod)} failed"
        )
        return AttemptOutcome(
            Verdict.RETRYABLE,
            reasons.WORKER_FAILED,
            f"{detail}: {message}" if message else detail,
            worker=pod_index(pod),
            exit_code=code,
        )
    if not job_deleting:
        for pod in ordered:
            if is_deleted(pod) and (pod.get("status") or {}).get("phase") != "Succeeded":
                return AttemptOutcome(
                    Verdict.DISRUPTED,
                    reasons.DISRUPTED,
                    f"{pod_label(pod)} was deleted",
                    worker=pod_index(pod),
                )
    if failed is not None:
        return AttemptOutcome(
            Verdict.RETRYABLE,
            reasons.WORKER_FAILED,
            f"Job failed: {failed.get('message') or failed.get('reason')}",
        )
    # Every index has a Succeeded pod: final (restartPolicy Never), so the attempt is done without
    # waiting for the Job controller's Complete condition, which lands a sync later and, until it
    # did, made the pass for the pods' success read "0 of N workers are running" (issue 16).
    succeeded = {pod_index(pod) for pod in ordered if (pod.get("status") or {}).get("phase") == "Succeeded"}
    if (
        find_condition(job, "Complete")
        or find_condition(job, "SuccessCriteriaMet")
        or (workers > 0 and succeeded >= set(range(workers)))
    ):
        return AttemptOutcome(Verdict.SUCCEEDED, reasons.COMPLETED, f"all {workers} workers succeeded")
    if (job.get("spec") or {}).get("suspend"):
        suspended = find_condition(job, "Suspended") or {}
        return AttemptOutcome(
            Verdict.QUEUED,
            suspended.get("reason") or reasons.WAITING_FOR_ADMISSION,
            suspended.get("message") or "the Job is suspended until its queue admits it",
        )
    unschedulable = _unschedulable_message(ordered)
    if unschedulable:
        return AttemptOutcome(Verdict.UNSCHEDULABLE, reasons.UNSCHEDULABLE, unschedulable)
    running = [pod for pod in ordered if (pod.get("status") or {}).get("phase") == "Running"]
    live_indexes = {
        pod_index(pod) for pod in running if not (pod.get("metadata") or {}).get("deletionTimestamp")
    }
    if len(live_indexes) >= workers:
        return AttemptOutcome(
            Verdict.RUNNING, reasons.ALL_WORKERS_RUNNING, f"all {workers} workers are running"
        )
    return AttemptOutcome(
        Verdict.STARTING, reasons.WORKERS_STARTING, f"{len(live_indexes)} of {workers} workers are running"
    )
