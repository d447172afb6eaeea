"""Fixtures for tests on the local real cluster (control plane, KWOK GPU nodes, process node, S3).

Why a plugin of session fixtures: starting the cluster costs seconds, so one cluster serves a whole
session, and only tests that ask for it (directly or through another fixture) start it; unit tests
never do. Mark such tests ``@pytest.mark.cluster``.

- ``cluster``: reuses a live cluster (``.cluster/kubeconfig`` answering) or starts one. A cluster
  this session started is stopped at the end, unless another live test session still uses it (the
  last one out stops it); a cluster started by ``make cluster-up`` is never stopped by tests.
- ``cluster_env``: the exports of ``.cluster/env`` as a dict (``PATH`` already expanded).
- ``api_client``, ``core_v1``, ``batch_v1``: the ``kubernetes`` sync client, as cluster admin.
- ``kubectl``: ``kubectl("get", "pods", "-n", ns)`` runs the cached kubectl, returns the
  CompletedProcess (text; ``check=True`` by default).
- ``s3`` (an s3fs filesystem on the local server) and ``s3_bucket`` (the default bucket's name).
- ``namespace``: a fresh namespace per test (its default ServiceAccount exists), deleted afterwards
  without waiting for the deletion to finish.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from localcluster import cluster as localcluster
from localcluster import health
from localcluster import s3 as s3_server
from localcluster.config import S3_DEFAULT_BUCKET, ClusterConfig, load_config
from localcluster.kubeconfig import parse_env
from localcluster.waiting import wait_until


@dataclass(frozen=True)
class ClusterHandle:
    """What a test needs to reach the running cluster."""

    config: ClusterConfig
    kubeconfig: Path
    kubectl_path: Path
    s3_endpoint: str
    s3_bucket: str

    def env(self) -> dict[str, str]:
        """``os.environ`` plus the exports of ``.cluster/env``: for subprocesses that use the cluster."""
        return {**os.environ, **parse_env(self.config.env_file.read_text(), os.environ.get("PATH", ""))}


def _users_dir(config: ClusterConfig) -> Path:
    return config.run_dir / "users"


def _register_user(config: ClusterConfig) -> Path:
    with localcluster.cluster_lock(config):
        users = _users_dir(config)
        users.mkdir(parents=True, exist_ok=True)
        marker = users / str(os.getpid())
        marker.touch()
        return marker


def _release_user(config: ClusterConfig, marker: Path) -> bool:
    """Drop this session's use; True when it was the last user of a cluster tests started."""
    with localcluster.cluster_lock(config):
        marker.unlink(missing_ok=True)
        others = [p for p in _users_dir(config).glob("*") if p.name.isdigit() and _pid_alive(int(p.name))]
        return not others and localcluster.started_by(config) == "pytest"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterHandle]:
    config = load_config()
    marker = _register_user(config)
    try:
        localcluster.up(config, owner="pytest")
        yield ClusterHandle(
            config=config,
            kubeconfig=config.kubeconfig,
            kubectl_path=config.kubectl,
            s3_endpoint=config.s3_endpoint,
            s3_bucket=S3_DEFAULT_BUCKET,
        )
    finally:
        if _release_user(config, marker):
            localcluster.down(config)


@pytest.fixture(scope="session")
def cluster_env(cluster: ClusterHandle) -> dict[str, str]:
    return parse_env(cluster.config.env_file.read_text(), os.environ.get("PATH", ""))


@pytest.fixture(scope="session")
def api_client(cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    api = health.api_client(cluster.config)
    yield api
    api.close()


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def batch_v1(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterHandle) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = cluster.env()

    def run(
        *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(cluster.kubectl_path), *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    return run


@pytest.fixture(scope="session")
def s3_bucket(cluster: ClusterHandle) -> str:
    return cluster.s3_bucket


@pytest.fixture(scope="session")
def s3(cluster: ClusterHandle):  # -> s3fs.S3FileSystem (imported lazily by localcluster.s3)
    return s3_server.filesystem(cluster.s3_endpoint)


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(core_v1: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.name)
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"finetune.dev/test": "true"}}})
    wait_until(
        lambda: core_v1.read_namespaced_service_account("default", name),
        30,
        f"ServiceAccount default in namespace {name}",
        hint="kube-controller-manager creates it; see .cluster/logs/kube-controller-manager.log",
    )
    yield name
    try:
        core_v1.delete_namespace(name, propagation_policy="Background")
    except client.ApiException as error:
        if error.status != 404:
            raise
