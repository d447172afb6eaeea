"""Pod and Job manifests for tests that run on the simulated (KWOK) GPU nodes."""

from __future__ import annotations

from typing import Any

# The image is never pulled: KWOK nodes run nothing.
KWOK_IMAGE = "registry.invalid/finetune/none:0"


def gpu_pod(name: str, gpus: int, finalizers: list[str] | None = None) -> dict[str, Any]:
    """A pod requesting ``gpus`` nvidia.com/gpu; ExtendedResourceToleration adds the toleration."""
    metadata: dict[str, Any] = {"name": name}
    if finalizers:
        metadata["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "worker",
                    "image": KWOK_IMAGE,
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


def gpu_job(name: str, completions: int, gpus: int = 1) -> dict[str, Any]:
    """An Indexed Job whose pods each request ``gpus`` GPUs."""
    pod = gpu_pod("unused", gpus)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": completions,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"spec": pod["spec"]},
        },
    }
