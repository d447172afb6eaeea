"""Kueue's gang admission, exercised through the real Job API the way Kueue drives it.

There is no Kueue controller on the local cluster (no image registry), so the test makes the two
API writes Kueue makes on a Job carrying `kueue.x-k8s.io/queue-name`: it leaves the Job suspended
while the workload waits for quota, then admits the whole gang by setting `spec.suspend: false`, and
later preempts it by setting `spec.suspend: true` again. The operator must create the Job suspended,
show Suspended with the Job's own reason while queued, run the gang once admitted, and treat a
preemption by the queue like any other disruption (not counted against maxRestarts).
"""

from __future__ import annotations

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def test_queued_job_waits_suspended_and_runs_when_admitted(operator, finetunejobs, api_client):
    batch = client.BatchV1Api(api_client)
    finetunejobs.create(finetunejobs.manifest("queued", workers=2, gpus=8, labels={QUEUE_LABEL: "team-a"}))

    status = finetunejobs.wait_condition("queued", "Suspended")
    suspended = next(c for c in status["conditions"] if c["type"] == "Suspended")
    job = batch.read_namespaced_job("queued-a1", finetunejobs.namespace)
    assert job.spec.suspend is True and job.metadata.labels[QUEUE_LABEL] == "team-a"
    assert suspended["reason"] == "JobSuspended", suspended  # the Job controller's reason, as Kueue leaves it
    assert not finetunejobs.pods("queued")

    batch.patch_namespaced_job("queued-a1", finetunejobs.namespace, {"spec": {"suspend": False}})  # admit
    finetunejobs.wait_pods_running("queued", attempt=1, count=2)
    status = finetunejobs.wait_condition("queued", "Running")
    assert next(c for c in status["conditions"] if c["type"] == "Suspended")["status"] == "False"

    batch.patch_namespaced_job("queued-a1", finetunejobs.namespace, {"spec": {"suspend": True}})  # preempt
    status = finetunejobs.wait_status(
        "queued", lambda s: (s.get("attempt") or 0) >= 2, "a new attempt after the queue preempted the gang"
    )
    assert status["restarts"]["failures"] == 0 and status["restarts"]["preemptions"] == 1
    finetunejobs.wait_condition("queued", "Suspended")
    assert batch.read_namespaced_job("queued-a2", finetunejobs.namespace).spec.suspend is True
