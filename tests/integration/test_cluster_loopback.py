"""Loopback only (docs/architecture.md): every socket of the local cluster is on loopback, and every
address it hands out is too."""

from __future__ import annotations

import ipaddress

import psutil
import pytest
from kubernetes import client

from localcluster import processes
from localcluster.cluster import DAEMONS
from tests.plugins.cluster import ClusterHandle

pytestmark = pytest.mark.cluster

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _cluster_processes(cluster: ClusterHandle) -> dict[str, list[psutil.Process]]:
    found = {}
    for name in DAEMONS:
        process = processes.running_process(cluster.config.run_dir, name)
        if process is not None:
            found[name] = [process, *process.children(recursive=True)]
    return found


def test_cluster_listens_and_dials_only_on_loopback(
    cluster: ClusterHandle, core_v1: client.CoreV1Api
) -> None:
    owned = _cluster_processes(cluster)
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "s3"} <= set(owned)
    listening, offending = 0, []
    for name, procs in owned.items():
        for process in procs:
            try:
                connections = process.net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue
            for conn in connections:
                if conn.status == psutil.CONN_LISTEN:
                    listening += 1
                    if not _is_loopback(conn.laddr.ip):
                        offending.append(
                            f"{name} (pid {process.pid}) listens on {conn.laddr.ip}:{conn.laddr.port}"
                        )
                elif conn.raddr and not _is_loopback(conn.raddr.ip):
                    offending.append(
                        f"{name} (pid {process.pid}) is connected to {conn.raddr.ip}:{conn.raddr.port}"
                    )
    assert listening > 0
    assert not offending, "\n".join(offending)


def test_node_service_and_pod_addresses_are_loopback(core_v1: client.CoreV1Api) -> None:
    addresses = [
        (f"node {node.metadata.name}", a.address)
        for node in core_v1.list_node().items
        for a in node.status.addresses
        if a.type == "InternalIP"
    ]
    addresses += [
        (f"service {s.metadata.namespace}/{s.metadata.name}", s.spec.cluster_ip)
        for s in core_v1.list_service_for_all_namespaces().items
        if s.spec.cluster_ip not in (None, "None")
    ]
    addresses += [
        (f"pod {p.metadata.namespace}/{p.metadata.name}", p.status.pod_ip)
        for p in core_v1.list_pod_for_all_namespaces().items
        if p.status.pod_ip
    ]
    assert addresses
    outside = [f"{what}: {ip}" for what, ip in addresses if ipaddress.ip_address(ip) not in LOOPBACK]
    assert not outside, "\n".join(outside)
