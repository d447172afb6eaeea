"""Fixtures: the `helm` CLI (built once from its Go module) and the chart rendered with it.

`helm` needs no cluster: `helm lint` and `helm template` run offline, so chart tests that only
render stay fast and only the install tests also ask for the `cluster` fixture. The binary comes
from :func:`localcluster.helm.ensure_helm` (cached under ``~/.cache/finetune-operator/helm-<version>``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
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
    import json

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
