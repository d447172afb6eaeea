"""Fixtures: the generated CRDs (crds/*.yaml) installed into the local cluster.

`crds_installed` applies every CRD with server-side apply (so it is idempotent and shares the
cluster with a developer's own `kubectl apply`) and waits until the API server reports each one
Established. It depends on the `cluster` fixture (tests/plugins/cluster.py) only to make sure the
cluster runs; it talks to it through the cached kubectl and the kubeconfig that localcluster writes.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
FIELD_MANAGER = "finetune-tests"
ESTABLISH_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class LocalKubectl:
    """The cached kubectl pointed at the local cluster's kubeconfig."""

    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with check, a non-zero exit fails with kubectl's own stderr."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result


def local_kubectl() -> LocalKubectl:
    """kubectl for the cluster localcluster manages (honours LOCALCLUSTER_DIR and friends)."""
    from localcluster.config import load_config

    config = load_config()
    return LocalKubectl(binary=config.kubectl, kubeconfig=config.kubeconfig)


def crd_documents() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in crds/."""
    documents = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def install_crds(kubectl: LocalKubectl) -> list[str]:
    """Server-side apply crds/ and wait until each CRD is Established; returns the CRD names."""
    kubectl.run(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", str(CRD_DIR)
    )
    names = [d["metadata"]["name"] for d in crd_documents()]
    for name in names:
        kubectl.run(
            "wait", "--for=condition=Established", f"--timeout={ESTABLISH_TIMEOUT_SECONDS}s", f"crd/{name}"
        )
    return names


@pytest.fixture(scope="session")
def crds_installed(cluster: Any) -> list[str]:
    """The names of the installed, Established CRDs."""
    return install_crds(local_kubectl())
