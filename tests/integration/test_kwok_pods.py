"""Tests decide the fate of pods on KWOK nodes: succeed, fail, disrupt (localcluster.kwokpods)."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster import kwokpods
from localcluster.waiting import wait_until
from tests.integration.kwok_manifests import gpu_job, gpu_pod

pytestmark = pytest.mark.cluster

HOLD = "test.finetune.dev/hold"


def test_pod_on_kwok_node_becomes_running(core_v1: client.CoreV1Api, namespace: str) -> None:
    core_v1.create_namespaced_pod(namespace, gpu_pod("runs", 1))
    pod = kwokpods.wait_for_phase(core_v1, namespace, "runs", "Running")
    assert pod.status.pod_ip.startswith("127."), pod.status.pod_ip
    assert pod.status.host_ip.startswith("127."), pod.status.host_ip


def test_succeed_pod(core_v1: client.CoreV1Api, namespace: str) -> None:
    core_v1.create_namespaced_pod(namespace, gpu_pod("ok", 1))
    kwokpods.succeed_pod(core_v1, namespace, "ok")
    pod = kwokpods.wait_for_phase(core_v1, namespace, "ok", "Succeeded")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")


def test_fail_pod_with_exit_code_and_termination_message(core_v1: client.CoreV1Api, namespace: str) -> None:
    core_v1.create_namespaced_pod(namespace, gpu_pod("bad", 1))
    kwokpods.fail_pod(core_v1, namespace, "bad", exit_code=78, message="spec.dataset.train: file not found")
    pod = kwokpods.wait_for_phase(core_v1, namespace, "bad", "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 78
    assert terminated.message == "spec.dataset.train: file not found"


def test_disrupt_pod_like_preemption(core_v1: client.CoreV1Api, namespace: str) -> None:
    # Our own finalizer keeps the object so the test can read what preemption left on it.
    core_v1.create_namespaced_pod(namespace, gpu_pod("victim", 1, finalizers=[HOLD]))
    kwokpods.wait_for_phase(core_v1, namespace, "victim", "Running")
    kwokpods.disrupt_pod(core_v1, namespace, "victim")

    pod = kwokpods.wait_for_phase(core_v1, namespace, "victim", "Failed")
    assert pod.metadata.deletion_timestamp is not None
    disruption = [c for c in pod.status.conditions if c.type == "DisruptionTarget"]
    assert [(c.status, c.reason) for c in disruption] == [("True", "PreemptionByScheduler")]
    assert pod.status.container_statuses[0].state.terminated.exit_code == 143

    core_v1.patch_namespaced_pod("victim", namespace, {"metadata": {"finalizers": None}})
    kwokpods.wait_until_gone(core_v1, namespace, "victim")


def test_job_controller_completes_an_indexed_job(
    core_v1: client.CoreV1Api, batch_v1: client.BatchV1Api, namespace: str
) -> None:
    batch_v1.create_namespaced_job(namespace, gpu_job("two", completions=2))

    def running_pods() -> list[client.V1Pod] | None:
        pods = core_v1.list_namespaced_pod(namespace, label_selector="job-name=two").items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if len(running) == 2 else None

    pods = wait_until(running_pods, 60, "both pods of job two to run")
    indexes = sorted(p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"]
    for pod in pods:
        kwokpods.succeed_pod(core_v1, namespace, pod.metadata.name)

    def complete() -> bool:
        conditions = batch_v1.read_namespaced_job_status("two", namespace).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    wait_until(complete, 60, "job two to be Complete")


def test_job_pod_disruption_fails_the_job(
    core_v1: client.CoreV1Api, batch_v1: client.BatchV1Api, namespace: str
) -> None:
    batch_v1.create_namespaced_job(namespace, gpu_job("one", completions=1))
    pod = wait_until(
        lambda: next(iter(core_v1.list_namespaced_pod(namespace, label_selector="job-name=one").items), None),
        60,
        "the pod of job one",
    )
    kwokpods.wait_for_phase(core_v1, namespace, pod.metadata.name, "Running")
    kwokpods.disrupt_pod(core_v1, namespace, pod.metadata.name)

    def failed() -> bool:
        conditions = batch_v1.read_namespaced_job_status("one", namespace).status.conditions or []
        return any(c.type == "Failed" and c.status == "True" for c in conditions)

    wait_until(failed, 60, "job one to be Failed (backoffLimit 0)")
    kwokpods.wait_until_gone(core_v1, namespace, pod.metadata.name)
