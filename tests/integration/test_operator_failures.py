"""Failure policy on the local cluster (docs/architecture.md, "Exit-code contract"): retryable
failures, disruptions and invalid configuration."""

from __future__ import annotations

import pytest

from localcluster import kwokpods

pytestmark = pytest.mark.cluster


def test_retryable_failures_replace_the_gang_until_max_restarts(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace
    finetunejobs.create(finetunejobs.manifest("flaky", workers=2, gpus=1, maxRestarts=1))
    pods = finetunejobs.wait_pods_running("flaky", attempt=1, count=2)
    finetunejobs.wait_condition("flaky", "Running")

    kwokpods.fail_pod(core_v1, ns, pods[0].metadata.name, exit_code=1, message="NCCL watchdog timeout")
    status = finetunejobs.wait_condition("flaky", "Restarting", reason="WorkerFailed")
    assert status["attempt"] == 2 and status["restarts"] == {"total": 1, "preemptions": 0, "failures": 1}
    restarting = next(c for c in status["conditions"] if c["type"] == "Restarting")
    assert "NCCL watchdog timeout" in restarting["message"]

    pods = finetunejobs.wait_pods_running("flaky", attempt=2, count=2)
    assert not finetunejobs.pods("flaky", attempt=1)  # the whole gang was replaced, never two at once
    status = finetunejobs.wait_condition("flaky", "Running")
    assert next(c for c in status["conditions"] if c["type"] == "Restarting")["status"] == "False"

    kwokpods.fail_pod(core_v1, ns, pods[1].metadata.name, exit_code=137, message="OOMKilled")
    status = finetunejobs.wait_condition("flaky", "Failed", reason="RestartLimitExceeded")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert "failed 2 times" in failed["message"] and "maxRestarts=1" in failed["message"]
    assert status["restarts"]["failures"] == 1 and status["phase"] == "Failed"
    assert {job.metadata.name for job in finetunejobs.jobs("flaky")} <= {"flaky-a1", "flaky-a2"}
    assert 'finetune_operator_restarts_total{kind="failure"} 1.0' in operator.metrics()


def test_a_disrupted_worker_restarts_without_using_the_budget(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace
    finetunejobs.create(finetunejobs.manifest("preempted", workers=2, gpus=1, maxRestarts=0))
    pods = finetunejobs.wait_pods_running("preempted", attempt=1, count=2)

    kwokpods.disrupt_pod(core_v1, ns, pods[1].metadata.name, message="preempted by a higher-priority job")
    pods = finetunejobs.wait_pods_running("preempted", attempt=2, count=2)
    status = finetunejobs.wait_condition("preempted", "Running")
    assert status["restarts"] == {"total": 1, "preemptions": 1, "failures": 0}

    for pod in pods:
        kwokpods.succeed_pod(core_v1, ns, pod.metadata.name)
    status = finetunejobs.wait_condition("preempted", "Succeeded")
    assert status["attempt"] == 2


def test_invalid_configuration_fails_at_once_with_the_termination_message(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace
    finetunejobs.create(finetunejobs.manifest("broken", workers=2, gpus=1, maxRestarts=3))
    pods = finetunejobs.wait_pods_running("broken", attempt=1, count=2)

    reason = "dataset.labelField: column 'stars' not found in s3://data/train.jsonl"
    kwokpods.fail_pod(core_v1, ns, pods[0].metadata.name, exit_code=78, message=reason)
    status = finetunejobs.wait_condition("broken", "Failed", reason="InvalidConfiguration")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["message"] == reason
    assert status["attempt"] == 1 and status["restarts"]["total"] == 0
    warnings = [event for event in finetunejobs.events("broken") if event.type == "Warning"]
    assert any(reason in event.message for event in warnings)
    assert len(finetunejobs.jobs("broken")) == 1
