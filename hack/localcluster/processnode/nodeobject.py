"""The Node object and Lease of the process node; pure builders plus one heartbeat thread.

Why a Lease and status heartbeats: the node-lifecycle controller marks a node NotReady (and
then evicts its pods) when neither its Lease in kube-node-lease is renewed nor its Ready
condition is refreshed within the grace period (40-50 s). The Lease is renewed every 10 s and
the status every 60 s, like a kubelet with node leases.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from datetime import UTC, datetime
from typing import Any

from localcluster.processnode.kube import Kube
from localcluster.processnode.podstatus import now_rfc3339

LABEL = "finetune.dev/process-node"
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10
STATUS_REPORT_SECONDS = 60
HOST_IP = "127.0.0.1"

log = logging.getLogger(__name__)


def host_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def node_metadata(name: str) -> dict[str, Any]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "name": name,
        "labels": {
            LABEL: "true",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
        },
    }


def node_spec() -> dict[str, Any]:
    return {"taints": [{"key": LABEL, "value": "true", "effect": "NoSchedule"}]}


def node_status(
    name: str, cpu: int, memory: int, now: str, since: str, kubelet_port: int = 0
) -> dict[str, Any]:
    # The process node enforces no storage limits (pods write to the host's disk), so it advertises
    # as much ephemeral storage as the KWOK nodes: every trainer pod requests its scratch size
    # (resources.ephemeralStorage), and a small figure here would make parallel tests unschedulable.
    resources = {"cpu": str(cpu), "memory": str(memory), "pods": "110", "ephemeral-storage": "1Ti"}
    healthy = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "process node is posting ready status"),
    ]
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            }
            for kind, status, reason, message in healthy
        ],
        "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": "local process node",
            "containerRuntimeVersion": "processnode://0.1.0",
            "kubeletVersion": "v1.35.4-processnode",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": node_metadata(name)["labels"]["kubernetes.io/arch"],
        },
    }


def lease_body(name: str, now_micro: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro},
    }


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeHeartbeat:
    """Registers the node, then keeps it Ready until stopped."""

    def __init__(self, kube: Kube, name: str, cpu: int | None = None, kubelet_port: int = 0) -> None:
        self._kube = kube
        self._kubelet_port = kubelet_port
        self._name = name
        self._cpu = cpu or os.cpu_count() or 1
        self._memory = host_memory_bytes()
        self._since = now_rfc3339()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-heartbeat", daemon=True)

    def register(self) -> None:
        status = self._status()
        if self._kube.get_node(self._name) is None:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": node_metadata(self._name),
                "spec": node_spec(),
            }
            body["status"] = status
            self._kube.create_node(body)
            log.info("registered node %s", self._name)
        else:
            self._kube.patch_node(self._name, {"metadata": node_metadata(self._name), "spec": node_spec()})
        self._kube.patch_node_status(self._name, {"status": status})
        self._kube.renew_lease(lease_body(self._name, _now_micro()))

    def _status(self) -> dict[str, Any]:
        return node_status(
            self._name, self._cpu, self._memory, now_rfc3339(), self._since, self._kubelet_port
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        ticks = 0
        lost = False
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            ticks += 1
            try:
                if lost:
                    self.register()
                    lost = False
                self._kube.renew_lease(lease_body(self._name, _now_micro()))
                if ticks % (STATUS_REPORT_SECONDS // LEASE_RENEW_SECONDS) == 0:
                    self._kube.patch_node_status(self._name, {"status": self._status()})
            except Exception as error:  # keep beating through API hiccups; re-register next time
                log.warning("node heartbeat failed (will retry): %s", error)
                lost = True
