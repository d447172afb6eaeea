"""Decide the fate of pods on KWOK nodes from tests: succeed, fail, or be disrupted.

Why: a simulated GPU node runs nothing, so a test plays the kubelet's part. Each function writes
exactly what a kubelet (or the scheduler, for preemption) writes, through the real API, so the Job
controller and the operator see what they would see on a real cluster:

- :func:`succeed_pod`: containers terminated with exit code 0, reason Completed; phase Succeeded.
- :func:`fail_pod`: containers terminated with the given exit code and termination message,
  reason Error; phase Failed.
- :func:`evict_pod`: what the kubelet's eviction manager writes when it evicts a pod: containers
  killed (exit code 137), phase Failed, status.reason ``Evicted`` and its message; a node-pressure
  eviction also carries ``DisruptionTarget=True`` (reason ``TerminationByKubelet``), an eviction
  for the pod's own storage limits (emptyDir sizeLimit, ephemeral-storage limits) does not.
- :func:`disrupt_pod`: condition ``DisruptionTarget=True`` with the given reason (the
  scheduler's preemption writes ``PreemptionByScheduler``), then a graceful delete; KWOK then
  marks the pod Failed (exit code 143) and removes it (stages ``pod-terminate-on-delete`` and
  ``pod-delete``).

KWOK does not overwrite these: its stages only act on Pending pods (to make them Running) and on
deleted pods, and the API server refuses to move a pod out of a terminal phase. The functions first
wait until KWOK made the pod Running, so there is no race with KWOK's own status write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.waiting import wait_until

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
DEFAULT_TIMEOUT = 60.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for_phase(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    phases: set[str] | str,
    timeout: float = DEFAULT_TIMEOUT,
) -> client.V1Pod:
    """Wait until the pod is in one of ``phases``; return it."""
    wanted = {phases} if isinstance(phases, str) else set(phases)

    def check() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in wanted else None

    return wait_until(check, timeout, f"pod {namespace}/{name} to reach phase {sorted(wanted)}")


def wait_until_gone(
    core: client.CoreV1Api, namespace: str, name: str, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Wait until the pod object no longer exists."""

    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    wait_until(gone, timeout, f"pod {namespace}/{name} to be deleted")


def terminated_status(
    pod: client.V1Pod, phase: str, exit_code: int, reason: str, message: str | None
) -> dict[str, Any]:
    """The status patch a kubelet writes when every container of ``pod`` has exited."""
    now = _now()
    started = {
        status.name: status.state.running.started_at
        for status in (pod.status.container_statuses or [])
        if status.state and status.state.running and status.state.running.started_at
    }
    containers = []
    for container in pod.spec.containers:
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started[container.name].strftime("%Y-%m-%dT%H:%M:%SZ")
            if container.name in started
            else now,
            "finishedAt": now,
        }
        if message:
            terminated["message"] = message
        containers.append(
            {
                "name": container.name,
                "image": container.image,
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        )
    condition_reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    return {
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": condition_reason, "lastTransitionTime": now},
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": condition_reason,
                    "lastTransitionTime": now,
                },
            ],
            "containerStatuses": containers,
        }
    }


def _finish(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    phase: str,
    exit_code: int,
    reason: str,
    message: str | None,
) -> client.V1Pod:
    pod = wait_for_phase(core, namespace, name, "Running")
    body = terminated_status(pod, phase, exit_code, reason, message)
    return core.patch_namespaced_pod_status(name, namespace, body, _content_type=STRATEGIC_MERGE)


def succeed_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    """End a Running KWOK pod with exit code 0 (phase Succeeded)."""
    return _finish(core, namespace, name, "Succeeded", 0, "Completed", None)


def fail_pod(
    core: client.CoreV1Api, namespace: str, name: str, exit_code: int = 1, message: str = ""
) -> client.V1Pod:
    """End a Running KWOK pod with ``exit_code`` and termination ``message`` (phase Failed)."""
    if exit_code == 0:
        raise ValueError("fail_pod needs a non-zero exit_code; use succeed_pod for exit code 0")
    return _finish(core, namespace, name, "Failed", exit_code, "Error", message or None)


EMPTY_DIR_LIMIT_MESSAGE = 'Usage of EmptyDir volume "{volume}" exceeds the limit "{limit}". '
"""The kubelet's message (pkg/kubelet/eviction/helpers.go) for an emptyDir over its sizeLimit."""
NODE_PRESSURE_MESSAGE = "The node was low on resource: {resource}. "


def evict_pod(
    core: client.CoreV1Api, namespace: str, name: str, message: str, node_pressure: bool = False
) -> client.V1Pod:
    """End a Running KWOK pod as the kubelet's eviction manager does (phase Failed, reason Evicted).

    ``node_pressure`` adds the DisruptionTarget condition the kubelet sets when it evicts to relieve
    the node; evictions for the pod's own storage limits come without it.
    """
    pod = wait_for_phase(core, namespace, name, "Running")
    body = terminated_status(pod, "Failed", 137, "Error", None)
    body["status"].update(reason="Evicted", message=message)
    if node_pressure:
        body["status"]["conditions"].append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": message,
                "lastTransitionTime": _now(),
            }
        )
    return core.patch_namespaced_pod_status(name, namespace, body, _content_type=STRATEGIC_MERGE)


def disrupt_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    reason: str = "PreemptionByScheduler",
    message: str = "",
    grace_period_seconds: int | None = None,
) -> None:
    """Disrupt a pod as preemption does: condition DisruptionTarget=True, then a graceful delete."""
    condition = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": reason,
        "message": message or f"{reason}: pod disrupted by a test (localcluster.kwokpods)",
        "lastTransitionTime": _now(),
    }
    core.patch_namespaced_pod_status(
        name, namespace, {"status": {"conditions": [condition]}}, _content_type=STRATEGIC_MERGE
    )
    delete_pod(core, namespace, name, grace_period_seconds)


def delete_pod(
    core: client.CoreV1Api, namespace: str, name: str, grace_period_seconds: int | None = None
) -> None:
    """Delete a pod (gracefully unless ``grace_period_seconds`` is 0); a missing pod is fine."""
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_period_seconds)
    except ApiException as error:
        if error.status != 404:
            raise
