"""Gang admission by the real Kueue controller (v0.19.2) on the local cluster.

Two FineTuneJobs of 2 workers x 8 GPUs against a ClusterQueue of 16 GPUs: Kueue admits the first
(unsuspends its attempt Job, the whole gang runs on the KWOK GPU nodes) and holds the second back.
The operator must create both attempt Jobs suspended, leave the second `Suspended` with Kueue's own
reason (read from the Workload Kueue made for its Job) instead of the Job controller's "Job
suspended", and run it once the first job is gone and Kueue admits it. Nothing here flips
`spec.suspend` by hand: every admission is Kueue's.

The preemption path (a higher-priority job evicts a running one, which commits a checkpoint and
resumes from it) trains for real and is in tests/e2e/test_kueue_preemption_e2e.py.
"""

from __future__ import annotations

import pytest

from localcluster.kueue import FLAVOR

pytestmark = pytest.mark.cluster

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def suspended_condition(status: dict) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Suspended"), {})


def waits_for_quota(status: dict) -> bool:
    """Suspended, in Kueue's words about the quota (not the Job controller's "Job suspended")."""
    suspended = suspended_condition(status)
    message = suspended.get("message") or ""
    return suspended.get("status") == "True" and "Kueue" in message and "insufficient" in message


def test_two_gangs_over_the_gpu_quota_one_runs_the_other_waits_with_kueues_reason(
    operator, finetunejobs, kueue_queue
):
    queue = kueue_queue(FLAVOR, {"nvidia.com/gpu": 16})
    labels = {QUEUE_LABEL: queue}

    finetunejobs.create(finetunejobs.manifest("first", workers=2, gpus=8, labels=labels))
    finetunejobs.wait_pods_running("first", attempt=1, count=2)  # Kueue admitted the whole gang
    status = finetunejobs.wait_condition("first", "Running")
    assert suspended_condition(status)["status"] == "False"

    finetunejobs.create(finetunejobs.manifest("second", workers=2, gpus=8, labels=labels))
    status = finetunejobs.wait_status(
        "second", waits_for_quota, "Suspended with Kueue's words about the quota"
    )
    suspended = suspended_condition(status)
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    print("second job:", suspended["reason"], "-", suspended["message"])
    assert suspended["reason"] == "Pending", suspended
    assert "nvidia.com/gpu" in suspended["message"] and FLAVOR in suspended["message"], suspended
    assert running["status"] == "False" and running["reason"] == "Queued"
    job = finetunejobs.batch.read_namespaced_job("second-a1", finetunejobs.namespace)
    assert job.spec.suspend is True and job.metadata.labels[QUEUE_LABEL] == queue
    assert not finetunejobs.pods("second")
    assert status["restarts"] == {"total": 0, "preemptions": 0, "failures": 0}

    # The first job goes; its GPUs come back to the queue and Kueue admits the second gang.
    finetunejobs.delete("first")
    finetunejobs.wait_pods_running("second", attempt=1, count=2)
    status = finetunejobs.wait_condition("second", "Running")
    suspended = suspended_condition(status)
    assert suspended["status"] == "False" and suspended["reason"] == "Resumed", suspended
    assert status["attempt"] == 1 and status["restarts"]["total"] == 0
