"""Scratch space on the real API server (issue 13, item 13).

The worker pods carry the scratch emptyDir sized from spec.resources.ephemeralStorage and the same
ephemeral-storage request and limit, as the API server stored them. A pod evicted by the kubelet for
outgrowing that limit (status written as the kubelet's eviction manager writes it, on a KWOK node)
is a failure counted against maxRestarts; a node-pressure eviction of the next attempt stays a free
disruption.
"""

from __future__ import annotations

import pytest

from localcluster import kwokpods

pytestmark = pytest.mark.cluster


def test_an_eviction_for_the_scratch_limit_counts_as_a_failure(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace
    manifest = finetunejobs.manifest("scratchy", workers=2, gpus=1, maxRestarts=1)
    manifest["spec"]["resources"]["ephemeralStorage"] = "3Gi"
    finetunejobs.create(manifest)
    pods = finetunejobs.wait_pods_running("scratchy", attempt=1, count=2)

    pod = core_v1.read_namespaced_pod(pods[0].metadata.name, ns)
    scratch = next(volume for volume in pod.spec.volumes if volume.name == "scratch")
    assert scratch.empty_dir.size_limit == "3Gi"
    container = pod.spec.containers[0]
    assert container.resources.limits["ephemeral-storage"] == "3Gi"
    assert container.resources.requests["ephemeral-storage"] == "3Gi"
    assert any(m.name == "scratch" and m.mount_path == "/scratch" for m in container.volume_mounts)

    message = kwokpods.EMPTY_DIR_LIMIT_MESSAGE.format(volume="scratch", limit="3Gi")
    kwokpods.evict_pod(core_v1, ns, pods[1].metadata.name, message)
    status = finetunejobs.wait_condition("scratchy", "Restarting", reason="WorkerFailed")
    assert status["restarts"] == {"total": 1, "preemptions": 0, "failures": 1}
    restarting = next(c for c in status["conditions"] if c["type"] == "Restarting")
    assert message.strip() in restarting["message"]
    assert "spec.resources.ephemeralStorage" in restarting["message"]

    # The next attempt is evicted to relieve the node: a disruption, not a second failure.
    pods = finetunejobs.wait_pods_running("scratchy", attempt=2, count=2)
    pressure = kwokpods.NODE_PRESSURE_MESSAGE.format(resource="ephemeral-storage")
    kwokpods.evict_pod(core_v1, ns, pods[0].metadata.name, pressure, node_pressure=True)
    status = finetunejobs.wait_status(
        "scratchy", lambda s: (s.get("attempt") or 0) >= 3, "attempt 3 after a node-pressure eviction"
    )
    assert status["restarts"] == {"total": 2, "preemptions": 1, "failures": 1}
    assert status.get("phase") != "Failed"
