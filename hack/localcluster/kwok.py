"""Simulated GPU nodes: the KWOK controller and the Node objects it manages.

Why KWOK: scheduling, quota and failure handling can be exercised on any number of 8-GPU nodes
without GPUs. KWOK plays "stages" on the objects it manages; we run it with our own stage set
(``kwok_stages/``): KWOK's defaults except its ``pod-complete`` stage, which would finish every
Job pod at once. Tests decide a pod's fate with :mod:`localcluster.kwokpods` instead.

Loopback (docs/architecture.md, "Loopback only"): pod IPs come from ``KWOK_POD_CIDR`` and node addresses from
``KWOK_NODE_NET`` (both in 127.0.0.0/8); KWOK serves no kubelet port.

:func:`gpu_node` is pure so benchmarks can create hundreds of such nodes with
:func:`create_gpu_nodes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.config import KWOK_NODE_NET, KWOK_POD_CIDR, ClusterConfig
from localcluster.processes import DaemonSpec

STAGES_DIR = Path(__file__).parent / "kwok_stages"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
INSTANCE_TYPE = "a3-highgpu-8g"
DEFAULT_GPU_NODES = tuple(f"gpu-{index}" for index in range(4))


def node_ip(index: int) -> str:
    """The InternalIP of simulated node number ``index``: 127.63.0.10, 127.63.0.11, ..."""
    offset = 10 + index
    if not 0 <= index < 250 * 256:
        raise ValueError(f"node index {index} is outside the 0..{250 * 256 - 1} simulated node addresses")
    return f"{KWOK_NODE_NET}.{offset // 256}.{offset % 256}"


def gpu_node(name: str, index: int, gpus: int = 8, cpu: str = "96", memory: str = "1Ti") -> dict[str, Any]:
    """A Node manifest labelled, annotated and tainted like a real 8-GPU node, managed by KWOK."""
    resources = {
        "cpu": cpu,
        "memory": memory,
        "pods": "110",
        GPU_RESOURCE: str(gpus),
        "ephemeral-storage": "1Ti",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": INSTANCE_TYPE,
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": GPU_PRODUCT,
                "nvidia.com/gpu.count": str(gpus),
                "nvidia.com/gpu.memory": "81559",
                "type": "kwok",
            },
        },
        "spec": {"taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [
                {"type": "InternalIP", "address": node_ip(index)},
                {"type": "Hostname", "address": name},
            ],
        },
    }


def create_gpu_nodes(
    core: client.CoreV1Api, names: tuple[str, ...] | list[str] = DEFAULT_GPU_NODES
) -> list[str]:
    """Create the named GPU nodes that do not exist yet; return the names created."""
    created = []
    for index, name in enumerate(names):
        try:
            core.create_node(gpu_node(name, index))
            created.append(name)
        except ApiException as error:
            if error.status != 409:
                raise
    return created


def write_kwok_config(config: ClusterConfig) -> tuple[Path, bool]:
    """One multi-document file: the stages KWOK plays (see module docstring); True if it changed."""
    config.kwok_dir.mkdir(parents=True, exist_ok=True)
    documents = [path.read_text().strip() for path in sorted(STAGES_DIR.glob("*.yaml"))]
    target = config.kwok_dir / "kwok.yaml"
    text = "\n---\n".join(documents) + "\n"
    changed = not target.exists() or target.read_text() != text
    if changed:
        target.write_text(text)
    return target, changed


def kwok_spec(config: ClusterConfig, config_file: Path) -> DaemonSpec:
    return DaemonSpec(
        name="kwok",
        argv=(
            str(config.kwok_bin_dir / "kwok"),
            f"--config={config_file}",
            f"--kubeconfig={config.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            f"--cidr={KWOK_POD_CIDR}",
            f"--node-ip={node_ip(0)}",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{config.ports.kwok}",
        ),
        # KWOK reads ~/.kwok/ by default; keep its home inside the cluster state.
        env={"KWOK_WORKDIR": str(config.kwok_dir)},
    )
