"""A small client for the FineTuneJobs of one namespace, through the real API (tests and benchmarks).

create, get, patch the run policy, delete, wait for a status or a condition, and read the attempt
Jobs, pods and events of a job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client

from finetune_api.constants import GROUP, PLURAL, VERSION
from localcluster.waiting import wait_until

WAIT_TIMEOUT = 120.0  # generous: the 2 shared CPUs also run other sessions' clusters and tests


class FineTuneJobs:
    """FineTuneJobs of one namespace, through the real API."""

    def __init__(self, api_client: client.ApiClient, namespace: str):
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    @staticmethod
    def manifest(
        name: str, workers: int = 2, gpus: int = 1, labels: dict[str, str] | None = None, **run_policy: Any
    ):
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FineTuneJob",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "image": "finetune-trainer:test",
                "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
                "dataset": {"train": "s3://data/train.jsonl"},
                "output": {"uri": f"s3://models/{name}"},
                "storage": {"secretRef": {"name": "s3-credentials"}},
                "resources": {"workers": workers, "gpusPerWorker": gpus},
                "runPolicy": {"terminationGracePeriodSeconds": 1, "backoffSeconds": 1, **run_policy},
            },
        }

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_run_policy(self, name: str, **run_policy: Any) -> None:
        body = {"spec": {"runPolicy": run_policy}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body)

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        body = self.get(name) or {}
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == kind:
                return condition
        return None

    def wait_status(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = WAIT_TIMEOUT
    ):
        """Wait until `check(status)` holds; returns the status."""

        def probe() -> dict[str, Any] | None:
            status = (self.get(name) or {}).get("status") or {}
            return status if check(status) else None

        return wait_until(probe, timeout, f"FineTuneJob {self.namespace}/{name}: {what}")

    def wait_condition(
        self,
        name: str,
        kind: str,
        status: str = "True",
        reason: str | None = None,
        timeout: float = WAIT_TIMEOUT,
    ):
        def holds(current: dict[str, Any]) -> bool:
            for condition in current.get("conditions") or []:
                if condition.get("type") == kind and condition.get("status") == status:
                    return reason is None or condition.get("reason") == reason
            return False

        return self.wait_status(
            name, holds, f"condition {kind}={status}" + (f" ({reason})" if reason else ""), timeout
        )

    # --- children ----------------------------------------------------------------------------------
    def jobs(self, name: str) -> list[client.V1Job]:
        selector = f"finetune.dev/job-name={name}"
        return list(self.batch.list_namespaced_job(self.namespace, label_selector=selector).items)

    def pods(self, name: str, attempt: int | None = None) -> list[client.V1Pod]:
        selector = f"finetune.dev/job-name={name}"
        if attempt is not None:
            selector += f",finetune.dev/attempt={attempt}"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return sorted(pods, key=lambda pod: pod.metadata.name)

    def wait_pods_running(
        self, name: str, attempt: int, count: int, timeout: float = WAIT_TIMEOUT
    ) -> list[client.V1Pod]:
        def running() -> list[client.V1Pod] | None:
            pods = [
                pod
                for pod in self.pods(name, attempt)
                if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
            ]
            return pods if len(pods) == count else None

        return wait_until(running, timeout, f"{count} running pods of {name} attempt {attempt}")

    def wait_no_pods(self, name: str, timeout: float = WAIT_TIMEOUT) -> None:
        wait_until(lambda: not self.pods(name), timeout, f"no pods left for {name}")

    def events(self, name: str) -> list[client.CoreV1Event]:
        selector = f"involvedObject.name={name},involvedObject.kind=FineTuneJob"
        return list(self.core.list_namespaced_event(self.namespace, field_selector=selector).items)
