"""The chart installs into the local cluster, creates what it promises, and its operator runs.

The first two tests install with the chart's defaults (no node selected, so the operator's pod
stays Pending: the local cluster has no image registry) and check the objects of each RBAC mode.
The last one installs with values that place the operator's pod on the process node, which runs
the container's command (`finetune-operator`, the real CLI of `python -m finetune_operator`) as a
local process with in-cluster configuration, exactly as a kubelet would start it: a TokenRequest
token of the chart's ServiceAccount, `kube-root-ca.crt` and the namespace in the projected
volume at /var/run/secrets/kubernetes.io/serviceaccount, `KUBERNETES_SERVICE_HOST/PORT` naming
the API server on 127.0.0.1, and the chart's HTTP probes deciding Ready.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finetune_api.constants import GROUP, VERSION
from finetune_testkit.finetunejobs import FineTuneJobs
from localcluster.kwokpods import succeed_pod
from localcluster.waiting import wait_until
from tests.plugins.helm import CHART_DIR, Helm, Release, set_flags

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


# Values that put the operator's pod on the process node. Pods there share the host's network, so
# the operator binds its own pod address (the kubelet expands $(POD_IP) in the container's args).
ON_PROCESS_NODE = {
    "nodeSelector": {"finetune.dev/process-node": "true"},
    "tolerations": [{"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}],
    "operator.bindAddress": "$(POD_IP)",
}
READY_TIMEOUT = 240.0  # an operator start on 2 shared cores plus a 10 s readiness period


def ready_operator_pod(core_v1: client.CoreV1Api, release: Release, other_than: str = "") -> client.V1Pod:
    """The release's operator pod once its Ready condition is True (and it is not `other_than`)."""
    selector = f"app.kubernetes.io/instance={release.name}"

    def probe() -> client.V1Pod | None:
        for pod in core_v1.list_namespaced_pod(release.namespace, label_selector=selector).items:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            if pod.metadata.uid != other_than and conditions.get("Ready") == "True":
                return pod
        return None

    return wait_until(probe, READY_TIMEOUT, f"a Ready operator pod of release {release.name}")


def container_process(pod: client.V1Pod) -> int:
    """The pid of the pod's operator process (the process node names it in the container ID)."""
    (status,) = pod.status.container_statuses
    return int(status.container_id.rsplit("-", 1)[1])


def read_in_pod(pid: int, name: str) -> str:
    """A file of the ServiceAccount mount as the container sees it (inside its mount namespace)."""
    path = f"/var/run/secrets/kubernetes.io/serviceaccount/{name}"
    return subprocess.run(
        ["nsenter", f"--target={pid}", "--mount", "--", "cat", path],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_operator_from_the_chart_runs_in_cluster_on_the_process_node(
    chart_release: Callable[..., Release],
    helm: Helm,
    cluster: Any,
    namespace: str,
    extra_namespaces: Callable[..., str],
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    kubectl: Any,
) -> None:
    watched = extra_namespaces("ml")
    release = chart_release(
        namespace,
        {
            **ON_PROCESS_NODE,
            "operator.watchNamespaces": [watched],
            "trainer.image": "finetune-trainer:test",
        },
    )
    pod = ready_operator_pod(core_v1, release)
    assert pod.spec.node_name == "local-0"
    container = pod.status.container_statuses[0]
    assert container.ready and container.started

    # What the process got is what a kubelet gives: service env on loopback, no kubeconfig, and the
    # projected ServiceAccount token of the chart's ServiceAccount, bound to this pod.
    pid = container_process(pod)
    environ = dict(
        entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry
    )
    assert environ["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert cluster.config.apiserver_url.endswith(f":{environ['KUBERNETES_SERVICE_PORT']}")
    assert "KUBECONFIG" not in environ
    claims = jwt_claims(read_in_pod(pid, "token"))
    assert claims["sub"] == release.subject
    assert claims["kubernetes.io"]["pod"]["uid"] == pod.metadata.uid
    assert read_in_pod(pid, "namespace") == namespace
    assert "BEGIN CERTIFICATE" in read_in_pod(pid, "ca.crt")

    # A FineTuneJob succeeds with the chart's RBAC (workers on KWOK nodes, ended by the test).
    core_v1.create_namespaced_secret(
        watched, {"metadata": {"name": "s3-credentials"}, "stringData": {"AWS_ACCESS_KEY_ID": "test"}}
    )
    jobs = FineTuneJobs(api_client, watched)
    jobs.create(FineTuneJobs.manifest("from-chart", workers=2, gpus=1))
    for worker in jobs.wait_pods_running("from-chart", attempt=1, count=2, timeout=READY_TIMEOUT):
        succeed_pod(core_v1, watched, worker.metadata.name)
    assert jobs.wait_condition("from-chart", "Succeeded", timeout=READY_TIMEOUT)["phase"] == "Succeeded"
    operator_log = kubectl("logs", "-n", namespace, pod.metadata.name).stdout
    assert "operator ready" in operator_log
    assert "Forbidden" not in operator_log, "the operator was denied something with the chart's RBAC"

    # helm upgrade with a changed value rolls the pod (Recreate: the old one goes, a new one is Ready).
    cluster_helm = helm.with_kubeconfig(cluster.kubeconfig)
    cluster_helm.run(
        "upgrade",
        release.name,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--reuse-values",
        *set_flags({"operator.logLevel": "DEBUG"}),
    )
    rolled = ready_operator_pod(core_v1, release, other_than=pod.metadata.uid)
    assert "--log-level=DEBUG" in rolled.spec.containers[0].args
    wait_until(
        lambda: all(p.metadata.uid != pod.metadata.uid for p in core_v1.list_namespaced_pod(namespace).items),
        READY_TIMEOUT,
        f"the old operator pod {pod.metadata.name} is gone",
    )

    # helm uninstall leaves the CRDs and the jobs (the chart keeps CRDs in crds/, never templates).
    cluster_helm.run("uninstall", release.name, "--namespace", namespace)
    kubectl("get", "crd", f"finetunejobs.{GROUP}")
    assert jobs.get("from-chart") is not None
    assert jobs.get("from-chart")["apiVersion"] == f"{GROUP}/{VERSION}"
