"""The node list and GPU scheduling of the local cluster (issue 2)."""

from __future__ import annotations

import pytest
from kubernetes import client

from localcluster.cluster import PROCESS_NODE_NAME, process_node_available
from localcluster.kwok import DEFAULT_GPU_NODES
from localcluster.waiting import wait_until
from tests.integration.kwok_manifests import gpu_pod

pytestmark = pytest.mark.cluster


def test_four_gpu_nodes_with_eight_gpus_each(core_v1: client.CoreV1Api) -> None:
    nodes = {node.metadata.name: node for node in core_v1.list_node().items}
    for name in DEFAULT_GPU_NODES:
        node = nodes[name]
        assert node.status.allocatable["nvidia.com/gpu"] == "8"
        assert node.status.allocatable["cpu"] == "96"
        assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert {(t.key, t.value, t.effect) for t in node.spec.taints} >= {
            ("nvidia.com/gpu", "present", "NoSchedule")
        }
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True"


@pytest.mark.skipif(not process_node_available(), reason="localcluster.processnode is not written yet")
def test_process_node_is_registered(core_v1: client.CoreV1Api) -> None:
    node = core_v1.read_node(PROCESS_NODE_NAME)
    assert node.metadata.labels.get("finetune.dev/process-node") == "true"
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"


def test_eight_gpu_pod_binds_to_a_gpu_node_and_nine_stays_pending(
    core_v1: client.CoreV1Api, namespace: str
) -> None:
    core_v1.create_namespaced_pod(namespace, gpu_pod("fits", 8))
    core_v1.create_namespaced_pod(namespace, gpu_pod("too-big", 9))

    bound = wait_until(
        lambda: core_v1.read_namespaced_pod("fits", namespace).spec.node_name, 60, "pod fits to be scheduled"
    )
    assert bound in DEFAULT_GPU_NODES
    tolerations = core_v1.read_namespaced_pod("fits", namespace).spec.tolerations
    assert any(t.key == "nvidia.com/gpu" for t in tolerations), "ExtendedResourceToleration did not add it"

    def unschedulable() -> client.V1PodCondition | None:
        pod = core_v1.read_namespaced_pod("too-big", namespace)
        conditions = [c for c in (pod.status.conditions or []) if c.type == "PodScheduled"]
        return conditions[0] if conditions and conditions[0].reason == "Unschedulable" else None

    condition = wait_until(unschedulable, 60, "pod too-big to be marked Unschedulable")
    assert condition.status == "False"
    pod = core_v1.read_namespaced_pod("too-big", namespace)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
