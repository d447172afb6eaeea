"""Fixtures: the operator as a real process (`python -m finetune_operator`) against the local cluster.

Why a subprocess and not Kopf in-process: the tests must see what users see (the CLI, peering, JSON
logs, /metrics, a process that can be SIGKILLed at any point and started again), and a crash of the
operator must not take the test runner with it.

- ``operator``: one operator per test, watching only that test's fresh namespace (so tests can run
  in parallel and kill their own operator), with a small restart backoff and resync, logging to
  ``.cluster/logs/operator-<namespace>.log``, ready when its /metrics answers. ``operator.kill()``
  (SIGKILL, a crash), ``operator.start()``, ``operator.restart()``, ``operator.metrics()``.
- ``finetunejobs``: a small client for FineTuneJobs in the test namespace (create, get, patch spec,
  delete, wait for a condition), plus helpers for their attempt Jobs and pods.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finetune_api.constants import GROUP, PLURAL, VERSION
from localcluster.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
WAIT_TIMEOUT = 120.0  # generous: the 2 shared CPUs also run other sessions' clusters and tests


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """One `python -m finetune_operator` process; start/kill/restart at will."""

    def __init__(self, env: dict[str, str], namespace: str, log_path: Path, extra_args: tuple[str, ...] = ()):
        # A fixed Kopf peering identity: a restarted process is "the same pod" (a container restart), so
        # it does not wait out its killed predecessor's peering lease (60 s) as a new pod would.
        self.env = {**env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "POD_ID": f"operator-{namespace}"}
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_loopback_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "finetune_operator",
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-bind-address",
            "127.0.0.1",
            "--resync-seconds",
            "5",
            "--restart-backoff-max-seconds",
            "2",
            "--workers",
            "2",
            "--log-level",
            "INFO",
            *self.extra_args,
        ]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "the operator is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command)}\n".encode())
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            self._ready,
            STARTUP_TIMEOUT,
            f"the operator's /metrics on 127.0.0.1:{self.metrics_port}",
            hint=f"see {self.log_path}",
        )

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with code {self.process and self.process.returncode}")
        return bool(self.metrics())

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the operator crashes wherever it is, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops the operator's pod; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture
def operator(cluster: Any, crds_installed: list[str], namespace: str) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster.env(), namespace, cluster.config.log_dir / f"operator-{namespace}.log")
    process.start()
    yield process
    process.stop()


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


@pytest.fixture
def finetunejobs(api_client: client.ApiClient, namespace: str) -> FineTuneJobs:
    return FineTuneJobs(api_client, namespace)
