"""Fixtures: the generated CRDs (crds/*.yaml) installed into the local cluster.

`crds_installed` applies every CRD with server-side apply (idempotent, and it shares the cluster
with a developer's own `kubectl apply` or another test session) and waits until the API server
reports each one Established. It builds on the `cluster` and `kubectl` fixtures of
tests/plugins/cluster.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
FIELD_MANAGER = "finetune-tests"
ESTABLISH_TIMEOUT_SECONDS = 60

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def crd_documents() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in crds/."""
    documents = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def install_crds(kubectl: Kubectl) -> list[str]:
    """Server-side apply crds/ and wait until each CRD is Established; returns the CRD names."""
    kubectl(
        "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", str(CRD_DIR)
    )
    names = [d["metadata"]["name"] for d in crd_documents()]
    for name in names:
        kubectl(
            "wait", "--for=condition=Established", f"--timeout={ESTABLISH_TIMEOUT_SECONDS}s", f"crd/{name}"
        )
    return names


@pytest.fixture(scope="session")
def crds_installed(cluster: Any, kubectl: Kubectl) -> list[str]:
    """The names of the installed, Established CRDs."""
    return install_crds(kubectl)
