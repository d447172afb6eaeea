"""Health checks of the cluster's components, each a cheap real request.

Why separate: `up` (to decide whether a live component can be reused and when a started one is
ready), `status`, and the pytest plugin (is the recorded cluster still answering?) all ask the
same questions.
"""

from __future__ import annotations

import ssl
from functools import cache

from kubernetes import client
from kubernetes import config as kube_config

from localcluster.config import ClusterConfig
from localcluster.waiting import http_ok, insecure_context


@cache
def _admin_context(pki: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=f"{pki}/ca.crt")
    context.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
    return context


def etcd_healthy(config: ClusterConfig) -> bool:
    return http_ok(f"http://127.0.0.1:{config.ports.etcd_client}/health")


def apiserver_ready(config: ClusterConfig) -> bool:
    if not (config.pki_dir / "admin.crt").exists():
        return False
    return http_ok(f"{config.apiserver_url}/readyz", context=_admin_context(str(config.pki_dir)))


def controller_manager_healthy(config: ClusterConfig) -> bool:
    return http_ok(f"https://127.0.0.1:{config.ports.controller_manager}/healthz", context=insecure_context())


def scheduler_healthy(config: ClusterConfig) -> bool:
    return http_ok(f"https://127.0.0.1:{config.ports.scheduler}/healthz", context=insecure_context())


def kwok_healthy(config: ClusterConfig) -> bool:
    return http_ok(f"http://127.0.0.1:{config.ports.kwok}/healthz")


def s3_healthy(config: ClusterConfig) -> bool:
    return http_ok(f"{config.s3_endpoint}/healthz")


def api_client(config: ClusterConfig) -> client.ApiClient:
    """A sync Kubernetes client authenticated as the cluster admin."""
    return kube_config.new_client_from_config(config_file=str(config.kubeconfig))


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    """Ready=True and no longer carrying the not-ready/unreachable taints the control plane adds."""
    node = core.read_node(name)
    conditions = {c.type: c.status for c in (node.status.conditions or [])}
    startup_taints = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    tainted = any(taint.key in startup_taints for taint in (node.spec.taints or []))
    return conditions.get("Ready") == "True" and not tainted
