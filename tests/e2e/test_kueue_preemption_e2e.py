"""Preemption by the real Kueue controller, with real training on the process node.

A low-priority quickstart job (2 workers) trains under a ClusterQueue whose CPU quota fits one such
gang. A high-priority job arrives; Kueue evicts the low one (it suspends its attempt Job, the Job
controller stops the workers with their grace period) and admits the high one. What must follow:

- the preempted gang commits a checkpoint on SIGTERM: scheduled checkpoints are set beyond the end
  of training, so the only checkpoint in S3 is the one the stop wrote;
- the low job waits `Suspended` in Kueue's words while the high one runs;
- once the high job is gone, Kueue readmits the low one, which resumes from exactly that checkpoint
  and Succeeds; `restarts.failures` stays 0 (a preemption is not a failure).

Priorities are PriorityClasses named in spec.resources.priorityClassName (Kueue reads their value);
they are `preemptionPolicy: Never`, so only Kueue preempts, never the kube-scheduler.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from localcluster.kueue import PROCESS_NODE_FLAVOR
from localcluster.quickstart import first_training_step, pod_log_lines, resumed_from
from localcluster.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
TRAINING_TIMEOUT = 600.0  # two CPU workers on 2 shared cores
NO_SCHEDULED_CHECKPOINT = 100_000  # beyond the last step: only the stop on SIGTERM commits one


def committed_steps(s3: Any, bucket: str, name: str) -> list[int]:
    """Steps of the checkpoints of job `name` whose manifest (written last) exists."""
    s3.invalidate_cache()
    manifests = s3.glob(f"{bucket}/checkpoints/{name}/checkpoint-*/manifest.json")
    return sorted(int(re.search(r"checkpoint-(\d+)/", path).group(1)) for path in manifests)


def suspended_by_kueue(status: dict[str, Any]) -> bool:
    suspended = next((c for c in status.get("conditions") or [] if c["type"] == "Suspended"), {})
    return suspended.get("status") == "True" and "Kueue" in (suspended.get("message") or "")


def test_preempted_gang_checkpoints_waits_and_resumes_from_that_checkpoint(
    quickstart_job, finetunejobs, e2e_operator, kueue_queue, priority_classes, s3, s3_bucket, cluster
) -> None:
    queue = kueue_queue(PROCESS_NODE_FLAVOR, {"cpu": "1"})  # one gang of 2 x 500m at a time
    priority = priority_classes(low=100, high=1000)

    def job(level: str) -> dict[str, Any]:
        manifest = quickstart_job(
            resources={"cpu": "500m", "priorityClassName": priority[level]},
            checkpoint={"everySteps": NO_SCHEDULED_CHECKPOINT},
        )
        manifest["metadata"]["labels"] = {QUEUE_LABEL: queue}
        return manifest

    low = job("low")
    name = low["metadata"]["name"]
    finetunejobs.create(low)
    finetunejobs.wait_pods_running(name, 1, 2, timeout=TRAINING_TIMEOUT)  # admitted by Kueue
    status = finetunejobs.wait_status(
        name,
        lambda s: (s.get("progress") or {}).get("step", 0) >= 3,
        "training past step 3",
        TRAINING_TIMEOUT,
    )
    assert committed_steps(s3, s3_bucket, name) == []

    high = job("high")
    high_name = high["metadata"]["name"]
    finetunejobs.create(high)

    # Kueue preempts the low gang: its workers stop, and it waits in Kueue's words.
    status = finetunejobs.wait_status(
        name,
        lambda s: suspended_by_kueue(s) and not finetunejobs.pods(name),
        "the low job stopped and suspended by Kueue",
        TRAINING_TIMEOUT,
    )
    suspended = next(c for c in status["conditions"] if c["type"] == "Suspended")
    print("low job while preempted:", suspended["reason"], "-", suspended["message"])
    stop_checkpoints = committed_steps(s3, s3_bucket, name)
    assert len(stop_checkpoints) == 1 and stop_checkpoints[0] >= 3, stop_checkpoints
    stopped_at = stop_checkpoints[0]
    assert status["restarts"]["failures"] == 0

    finetunejobs.wait_pods_running(high_name, 1, 2, timeout=TRAINING_TIMEOUT)  # admitted in its place
    assert suspended_by_kueue((finetunejobs.get(name) or {}).get("status") or {})
    finetunejobs.delete(high_name)  # its quota returns; Kueue readmits the low job

    status = finetunejobs.wait_condition(name, "Succeeded", timeout=TRAINING_TIMEOUT)
    assert status["restarts"]["failures"] == 0, status["restarts"]
    assert status["restarts"]["total"] == status["restarts"]["preemptions"] <= 1, status["restarts"]
    assert status["progress"]["percent"] == 100

    attempt = status["attempt"]
    rank0 = next(
        p
        for p in finetunejobs.pods(name, attempt)
        if p.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "0"
    )
    resumed = resumed_from(pod_log_lines(cluster.config, rank0))
    first = first_training_step(pod_log_lines(cluster.config, rank0))
    print(f"stopped at checkpoint-{stopped_at}; attempt {attempt} resumed from {resumed}, first step {first}")
    assert resumed == stopped_at, (resumed, stopped_at)
    assert first is not None and first > stopped_at, (first, stopped_at)
    wait_until(lambda: not finetunejobs.pods(high_name), 120, "the high job's pods gone")
