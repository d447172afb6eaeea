"""Kueue's words in the Suspended condition: which Workload condition is quoted, and when."""

from __future__ import annotations

import dataclasses

from finetune_operator import conditions as cond
from finetune_operator.job.kueue import admission_words, queued_job
from finetune_operator.job.reconcile import decide
from tests.plugins.operator_objects import job_obj, true
from tests.unit.test_operator_reconcile import SETTINGS, at, observed, view

QUOTA_MESSAGE = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
    "gpu-h100, 16 more needed"
)


def workload(*conditions: dict) -> dict:
    return {"metadata": {"name": "job-second-a1-8a3a0"}, "status": {"conditions": list(conditions)}}


def queued(attempt: int = 1, **labels: str) -> dict:
    return job_obj(
        attempt,
        [true("Suspended", reason="JobSuspended", message="Job suspended")],
        spec={"suspend": True},
        metadata={"labels": {"finetune.dev/attempt": str(attempt), **labels}},
    )


def test_quota_shortage_is_quoted_with_the_workload_name():
    words = admission_words(
        [
            workload(
                {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": QUOTA_MESSAGE}
            )
        ]
    )
    assert words == ("Pending", f"Kueue (workload job-second-a1-8a3a0): {QUOTA_MESSAGE}")


def test_an_eviction_explains_more_than_the_pending_reservation():
    words = admission_words(
        [
            workload(
                {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": "waiting"},
                true("Evicted", reason="Preempted", message="Preempted to accommodate a workload (UID: x)"),
            )
        ]
    )
    assert words is not None and words[0] == "Preempted" and "accommodate" in words[1]


def test_no_workload_means_no_words_and_an_unjudged_one_says_so():
    assert admission_words([]) is None
    assert admission_words([workload()]) == (
        "Pending",
        "Kueue (workload job-second-a1-8a3a0): waiting for Kueue to consider the workload",
    )


def test_only_a_suspended_newest_attempt_with_a_queue_label_is_queued():
    label = {"kueue.x-k8s.io/queue-name": "gpu-queue"}
    assert queued_job({1: queued(1, **label)}) is not None
    assert queued_job({1: queued(1)}) is None  # runPolicy.suspend or not Kueue's: nothing to read
    assert queued_job({1: queued(1, **label), 2: job_obj(2)}) is None  # the newest attempt runs
    deleting = queued(1, **label)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert queued_job({1: deleting}) is None
    assert queued_job({}) is None


def test_the_suspended_condition_carries_kueues_words_when_known_else_the_jobs():
    status = {"attempt": 1}
    plain = observed([queued(1, **{"kueue.x-k8s.io/queue-name": "gpu-queue"})])
    without = decide(view(status), plain, at(10), SETTINGS)
    suspended = cond.get(without.status["conditions"], cond.SUSPENDED)
    assert (suspended["status"], suspended["reason"], suspended["message"]) == (
        "True",
        "JobSuspended",
        "Job suspended",
    )

    words = ("Pending", f"Kueue (workload w): {QUOTA_MESSAGE}")
    with_words = decide(view(status), dataclasses.replace(plain, queue_words=words), at(10), SETTINGS)
    suspended = cond.get(with_words.status["conditions"], cond.SUSPENDED)
    running = cond.get(with_words.status["conditions"], cond.RUNNING)
    assert (suspended["status"], suspended["reason"], suspended["message"]) == ("True", *words)
    assert running["reason"] == "Queued" and running["message"] == words[1]
