"""Fixtures: the `helm` CLI (built once from its Go module), chart releases, and the chart's identity.

- ``helm``: needs no cluster; `helm lint` and `helm template` run offline, so chart tests that only
  render stay fast. The binary comes from :func:`localcluster.helm.ensure_helm` (cached under
  ``~/.cache/finetune-operator/helm-<version>``).
- ``chart_release``: a factory ``install(namespace, values) -> Release`` that `helm install`s the
  chart into the local cluster under a unique release (and peering) name, uninstalled afterwards.
- :func:`service_account_kubeconfig`: a kubeconfig holding a TokenRequest token of a
  ServiceAccount, so a process acts with exactly the chart's RBAC instead of cluster-admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "finetune-operator"
HELM_TIMEOUT_SECONDS = 300


def set_flags(values: dict[str, Any] | None) -> list[str]:
    """--set-json flags for a flat mapping of dotted keys to JSON-able values."""
    flags: list[str] = []
    for key, value in (values or {}).items():
        flags += ["--set-json", f"{key}={json.dumps(value)}"]
    return flags


@dataclass(frozen=True)
class Helm:
    """The helm binary, optionally pointed at the local cluster's kubeconfig."""

    binary: Path
    kubeconfig: Path | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run helm; with check, a non-zero exit fails with helm's own stderr."""
        env = {
            **os.environ,
            "HELM_CACHE_HOME": "/tmp/finetune-helm/cache",
            "HELM_CONFIG_HOME": "/tmp/finetune-helm/config",
        }
        env["HELM_DATA_HOME"] = "/tmp/finetune-helm/data"
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT_SECONDS
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}"
            )
        return result

    def template(
        self,
        values: dict[str, Any] | None = None,
        release: str = "ft",
        namespace: str = "finetune-system",
        extra: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The chart's rendered objects (templates only; crds/ are not rendered by `helm template`)."""
        result = self.run(
            "template", release, str(CHART_DIR), "--namespace", namespace, *set_flags(values), *extra
        )
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        return Helm(binary=self.binary, kubeconfig=kubeconfig)


def find(
    objects: Sequence[dict[str, Any]], kind: str, name: str | None = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """Objects of `kind` (and `name`/`namespace` when given) among rendered objects."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind
        and (name is None or obj["metadata"]["name"] == name)
        and (namespace is None or obj["metadata"].get("namespace") == namespace)
    ]


@pytest.fixture(scope="session")
def helm() -> Helm:
    """helm built (once) from its Go module; offline commands only until given a kubeconfig."""
    from localcluster.helm import ensure_helm

    return Helm(binary=ensure_helm())


@dataclass(frozen=True)
class Release:
    """One installed release of the chart."""

    name: str
    namespace: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-finetune-operator"

    @property
    def service_account(self) -> str:
        return self.fullname

    @property
    def subject(self) -> str:
        """The user name the operator's ServiceAccount acts as (for `kubectl auth can-i --as`)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@pytest.fixture
def chart_release(helm: Helm, cluster: Any, crds_installed: Any) -> Iterator[Callable[..., Release]]:
    """install(namespace, values) -> Release; every release is uninstalled after the test.

    Each release gets its own name and Kopf peering name, so cluster-scoped objects never collide
    with other tests or sessions sharing the cluster.
    """
    cluster_helm = helm.with_kubeconfig(cluster.kubeconfig)
    releases: list[Release] = []

    def install(namespace: str, values: dict[str, Any] | None = None) -> Release:
        release = Release(name=f"ft{uuid.uuid4().hex[:8]}", namespace=namespace)
        values = {"operator.peeringName": release.name, **(values or {})}
        cluster_helm.run(
            "install", release.name, str(CHART_DIR), "--namespace", namespace, *set_flags(values)
        )
        releases.append(release)
        return release

    yield install
    for release in releases:
        cluster_helm.run("uninstall", release.name, "--namespace", release.namespace, check=False)


def service_account_kubeconfig(
    core_v1: Any, admin_kubeconfig: Path, namespace: str, service_account: str, path: Path
) -> Path:
    """Write a kubeconfig for `service_account` (a one-hour TokenRequest token) to `path`."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    token = core_v1.create_namespaced_service_account_token(service_account, namespace, request).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": "local", "user": service_account, "namespace": namespace}}
        ],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def extra_namespaces(core_v1: Any, namespace: str) -> Iterator[Callable[..., str]]:
    """make(suffix, labels=None) -> a further fresh namespace (named after `namespace`), deleted afterwards.

    Chart tests need several: the release's own, watched ones, and unwatched ones.
    """
    created: list[str] = []

    def make(suffix: str, labels: dict[str, str] | None = None) -> str:
        name = f"{namespace[:50]}-{suffix}"[:63].rstrip("-")
        core_v1.create_namespace(
            {"metadata": {"name": name, "labels": {"finetune.dev/test": "true", **(labels or {})}}}
        )
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            core_v1.delete_namespace(name, propagation_policy="Background")
        except Exception as error:  # a namespace already being deleted is fine
            if getattr(error, "status", None) != 404:
                raise
