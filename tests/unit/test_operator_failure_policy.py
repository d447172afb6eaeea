"""Failure classification of one attempt (docs/architecture.md, "Exit-code contract"), table-driven."""

from __future__ import annotations

import pytest

from finetune_operator.job.failure_policy import Verdict, classify_attempt
from finetune_operator.job.pods import worker_summary
from tests.plugins.operator_objects import job_obj, pod_obj, true

UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/5 nodes are available: 4 Insufficient nvidia.com/gpu.",
}
DISRUPTION = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "PreemptionByScheduler",
    "message": "preempted",
}
FAILED = true("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")

CASES = [
    ("both running", job_obj(1), [pod_obj(1, 0), pod_obj(1, 1)], Verdict.RUNNING, None),
    ("one pending", job_obj(1), [pod_obj(1, 0), pod_obj(1, 1, phase="Pending")], Verdict.STARTING, None),
    ("no pods yet", job_obj(1), [], Verdict.STARTING, None),
    (
        "unschedulable",
        job_obj(1),
        [pod_obj(1, 0, phase="Pending", conditions=[UNSCHEDULABLE])],
        Verdict.UNSCHEDULABLE,
        "Insufficient nvidia.com/gpu",
    ),
    ("complete", job_obj(1, [true("Complete")]), [], Verdict.SUCCEEDED, None),
    (
        "exit 78 is permanent with the termination message",
        job_obj(1),
        [pod_obj(1, 0), pod_obj(1, 1, "Failed", 78, "spec.dataset.textField: column 'txt' not found")],
        Verdict.PERMANENT,
        "column 'txt' not found",
    ),
    (
        "exit 78 wins over a disruption",
        job_obj(1),
        [pod_obj(1, 0, conditions=[DISRUPTION]), pod_obj(1, 1, "Failed", 78, "bad")],
        Verdict.PERMANENT,
        "bad",
    ),
    (
        "exit 1 is retryable",
        job_obj(1, [FAILED]),
        [pod_obj(1, 0, "Failed", 1, "CUDA error"), pod_obj(1, 1, deleting=True)],
        Verdict.RETRYABLE,
        "worker 0 (pod reviews-a1-0-xyz) exited with code 1: CUDA error",
    ),
    (
        "DisruptionTarget is a disruption",
        job_obj(1),
        [pod_obj(1, 0, conditions=[DISRUPTION], deleting=True), pod_obj(1, 1)],
        Verdict.DISRUPTED,
        "preempted",
    ),
    (
        "a peer failing after a disruption is still a disruption",
        job_obj(1),
        [pod_obj(1, 0, "Failed", 143, conditions=[DISRUPTION]), pod_obj(1, 1, "Failed", 1)],
        Verdict.DISRUPTED,
        None,
    ),
    ("evicted", job_obj(1), [pod_obj(1, 0, "Failed", reason="Evicted")], Verdict.DISRUPTED, None),
    (
        "deleted by someone",
        job_obj(1),
        [pod_obj(1, 0, deleting=True), pod_obj(1, 1)],
        Verdict.DISRUPTED,
        None,
    ),
    (
        "deleted pods of a Job we are deleting are not a disruption",
        job_obj(1, metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        [pod_obj(1, 0, deleting=True), pod_obj(1, 1, deleting=True)],
        Verdict.STARTING,
        None,
    ),
    (
        "pods gone: the Job's podFailurePolicy message tells a disruption",
        job_obj(
            1,
            [
                true(
                    "Failed",
                    reason="PodFailurePolicy",
                    message="Pod ns/p has condition DisruptionTarget matching FailJob rule at index 1",
                )
            ],
        ),
        [],
        Verdict.DISRUPTED,
        None,
    ),
    (
        "pods gone: the Job's podFailurePolicy message tells an invalid configuration",
        job_obj(
            1,
            [
                true(
                    "Failed",
                    reason="PodFailurePolicy",
                    message="Container trainer for pod ns/p failed "
                    "with exit code 78 matching FailJob rule at index 0",
                )
            ],
        ),
        [],
        Verdict.PERMANENT,
        "exit code 78",
    ),
    ("pods gone: a failed Job is retryable", job_obj(1, [FAILED]), [], Verdict.RETRYABLE, "backoff limit"),
    (
        "suspended Job waits for Kueue",
        job_obj(
            1, [true("Suspended", reason="JobSuspended", message="Job suspended")], spec={"suspend": True}
        ),
        [],
        Verdict.QUEUED,
        "Job suspended",
    ),
]


@pytest.mark.parametrize(
    ("job", "pods", "verdict", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_classify_attempt(job, pods, verdict, message):
    outcome = classify_attempt(job, pods, workers=2)
    assert outcome.verdict is verdict
    if message:
        assert message in outcome.message


def test_worker_summary_lists_workers_in_rank_order():
    summary = worker_summary([pod_obj(1, 1, "Failed", 1), pod_obj(1, 0)])
    assert summary == [
        {"index": 0, "pod": "reviews-a1-0-xyz", "phase": "Running", "node": "gpu-0"},
        {
            "index": 1,
            "pod": "reviews-a1-1-xyz",
            "phase": "Failed",
            "node": "gpu-1",
            "exitCode": 1,
            "reason": "Error",
        },
    ]
