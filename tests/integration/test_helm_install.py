"""The chart installs into the local cluster in both RBAC modes and creates what it promises.

The operator's Deployment is not expected to become Ready: the local cluster has no image registry
(KWOK nodes run nothing, the process node runs only what selects it). What it takes to run the
operator with the chart's RBAC is shown in test_rbac_operator.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.plugins.helm import Release

pytestmark = pytest.mark.cluster


def names(
    kubectl: Callable[..., Any], kind: str, namespace: str | None = None, selector: str = ""
) -> set[str]:
    args = ["get", kind, "-o", "name"]
    args += ["-n", namespace] if namespace else []
    args += ["-l", selector] if selector else []
    return {line.split("/", 1)[1] for line in kubectl(*args).stdout.split()}


def test_chart_installs_in_namespaced_mode(
    chart_release: Callable[..., Release], namespace: str, extra_namespaces: Callable[..., str], kubectl: Any
) -> None:
    watched = extra_namespaces("ml")
    release = chart_release(
        namespace,
        {
            "rbac.scope": "namespaced",
            "operator.watchNamespaces": [watched],
            "dashboard.enabled": True,
            "networkPolicy.enabled": True,
        },
    )
    instance = f"app.kubernetes.io/instance={release.name}"
    assert release.fullname in names(kubectl, "deployment", namespace)
    assert release.service_account in names(kubectl, "serviceaccount", namespace)
    assert f"{release.fullname}-metrics" in names(kubectl, "service", namespace)
    assert f"{release.fullname}-dashboard" in names(kubectl, "configmap", namespace)
    assert names(kubectl, "role", watched, instance) == {release.fullname}
    assert names(kubectl, "rolebinding", watched, instance) == {release.fullname}
    assert names(kubectl, "kopfpeering", watched) == {release.name}
    assert names(kubectl, "networkpolicy", watched) == {f"{release.fullname}-trainers"}
    assert names(kubectl, "clusterrole", selector=instance) == {f"{release.fullname}-discovery"}
    assert names(kubectl, "role", namespace, instance) == set()


def test_chart_installs_in_cluster_mode(
    chart_release: Callable[..., Release], namespace: str, kubectl: Any
) -> None:
    release = chart_release(namespace)
    instance = f"app.kubernetes.io/instance={release.name}"
    assert names(kubectl, "clusterrole", selector=instance) == {release.fullname}
    assert names(kubectl, "clusterrolebinding", selector=instance) == {release.fullname}
    assert release.name in names(kubectl, "clusterkopfpeering")
    deployment = kubectl(
        "get", "deployment", release.fullname, "-n", namespace, "-o", "jsonpath={.spec.strategy.type}"
    )
    assert deployment.stdout == "Recreate"
