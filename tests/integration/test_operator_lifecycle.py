"""The operator on the local cluster: a gang starts right, succeeds, is suspended, and is cleaned up."""

from __future__ import annotations

import pytest

from localcluster import kwokpods
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster


def env_of(pod):
    return {entry.name: entry for entry in pod.spec.containers[0].env}


def test_two_workers_with_eight_gpus_start_as_a_gang_and_succeed(operator, finetunejobs, core_v1):
    finetunejobs.create(finetunejobs.manifest("gang", workers=2, gpus=8))
    pods = finetunejobs.wait_pods_running("gang", attempt=1, count=2)

    assert {pod.spec.node_name for pod in pods} <= {"gpu-0", "gpu-1", "gpu-2", "gpu-3"}
    assert len({pod.spec.node_name for pod in pods}) == 2  # 8 GPUs each: one pod per node
    indexes = sorted(pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] for pod in pods)
    assert indexes == ["0", "1"]
    for pod in pods:
        container = pod.spec.containers[0]
        assert container.resources.requests["nvidia.com/gpu"] == "8"
        assert container.resources.limits["nvidia.com/gpu"] == "8"
        assert "--master-addr=gang-a1-0.gang" in container.command
        assert "--node-rank=$(JOB_COMPLETION_INDEX)" in container.command
        assert (
            pod.spec.hostname
            == f"gang-a1-{pod.metadata.annotations['batch.kubernetes.io/job-completion-index']}"
        )
        assert pod.spec.subdomain == "gang"
        assert pod.spec.automount_service_account_token is False
        assert env_of(pod)["FINETUNE_ATTEMPT"].value == "1"
    assert core_v1.read_namespaced_service("gang", finetunejobs.namespace).spec.cluster_ip == "None"

    finetunejobs.wait_condition("gang", "Running")
    for pod in pods:
        kwokpods.succeed_pod(core_v1, finetunejobs.namespace, pod.metadata.name)
    status = finetunejobs.wait_condition("gang", "Succeeded")
    assert status["phase"] == "Succeeded" and status["attempt"] == 1 and status["completionTime"]
    assert [worker["phase"] for worker in status["workers"]] == ["Succeeded", "Succeeded"]
    reasons = {event.reason for event in finetunejobs.events("gang")}
    assert {"AttemptCreated", "Completed"} <= reasons
    wait_until(
        lambda: 'finetune_operator_completions_total{outcome="succeeded"} 1.0' in operator.metrics(),
        30,
        "the completion in the operator's metrics",
    )
    body = finetunejobs.get("gang")
    assert not body["metadata"].get("finalizers")  # nothing blocks deletion when the operator is down


def test_suspend_leaves_no_pods_and_unsuspend_runs_a_new_attempt(operator, finetunejobs):
    finetunejobs.create(finetunejobs.manifest("pause", workers=2, gpus=1))
    finetunejobs.wait_pods_running("pause", attempt=1, count=2)

    finetunejobs.patch_run_policy("pause", suspend=True)
    finetunejobs.wait_condition("pause", "Suspended")
    finetunejobs.wait_no_pods("pause")
    wait_until(lambda: not finetunejobs.jobs("pause"), 30, "the suspended attempt's Job to go")
    status = finetunejobs.wait_status("pause", lambda s: s.get("phase") == "Suspended", "phase Suspended")
    assert status["restarts"]["total"] == 0

    finetunejobs.patch_run_policy("pause", suspend=False)
    finetunejobs.wait_pods_running("pause", attempt=2, count=2)
    status = finetunejobs.wait_condition("pause", "Running")
    assert status["attempt"] == 2 and status["restarts"]["total"] == 0
    suspended = finetunejobs.condition("pause", "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("False", "Resumed")


def test_a_job_needing_more_gpus_than_exist_says_so(operator, finetunejobs):
    finetunejobs.create(finetunejobs.manifest("huge", workers=1, gpus=16))
    status = finetunejobs.wait_condition("huge", "Running", status="False", reason="Unschedulable")
    running = next(c for c in status["conditions"] if c["type"] == "Running")
    assert "nvidia.com/gpu" in running["message"]
    assert status["phase"] == "Pending"
    assert "Unschedulable" in {event.reason for event in finetunejobs.events("huge")}


def test_deadline_fails_the_job_and_removes_its_pods(operator, finetunejobs):
    finetunejobs.create(finetunejobs.manifest("late", workers=1, gpus=1, activeDeadlineSeconds=3))
    finetunejobs.wait_pods_running("late", attempt=1, count=1)
    status = finetunejobs.wait_condition("late", "Failed", reason="DeadlineExceeded", timeout=30)
    assert "activeDeadlineSeconds=3" in status["message"]
    finetunejobs.wait_no_pods("late")


def test_ttl_deletes_a_finished_job_and_its_children(operator, finetunejobs, core_v1):
    finetunejobs.create(finetunejobs.manifest("brief", workers=1, gpus=1, ttlSecondsAfterFinished=2))
    (pod,) = finetunejobs.wait_pods_running("brief", attempt=1, count=1)
    kwokpods.succeed_pod(core_v1, finetunejobs.namespace, pod.metadata.name)
    finetunejobs.wait_condition("brief", "Succeeded")
    wait_until(lambda: finetunejobs.get("brief") is None, 30, "the TTL to delete the FineTuneJob")
    wait_until(lambda: not finetunejobs.jobs("brief"), 30, "garbage collection of the attempt Jobs")


def test_deleting_a_job_removes_its_children(operator, finetunejobs, core_v1):
    finetunejobs.create(finetunejobs.manifest("gone", workers=2, gpus=1))
    finetunejobs.wait_pods_running("gone", attempt=1, count=2)
    finetunejobs.delete("gone")
    wait_until(lambda: finetunejobs.get("gone") is None, 30, "the FineTuneJob to be deleted (no finalizer)")
    wait_until(lambda: not finetunejobs.jobs("gone"), 30, "the attempt Jobs to be garbage collected")
    finetunejobs.wait_no_pods("gone")

    def service_gone() -> bool:
        services = core_v1.list_namespaced_service(
            finetunejobs.namespace, label_selector="finetune.dev/job-name=gone"
        )
        return not services.items

    wait_until(service_gone, 30, "the headless Service to be garbage collected")
