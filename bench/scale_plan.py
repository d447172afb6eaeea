"""What the operator-scale benchmark applies: the job mix, FineTuneJobs, and the bench-only nodes.

Why pure: the mix decides whether the run measures the operator or the scheduler's queue, so it is
computed (and unit-tested) up front and written into the results. Jobs get 1 to 4 workers in turn;
every worker asks for the largest GPU count of 8, 4, 2, 1 at which all jobs of the run fit on the
simulated fleet at once. When even one GPU per worker does not fit (N=1000 on 200 x 8 GPUs: 2500
workers, 1600 GPUs), the first jobs keep one GPU per worker up to the fleet's capacity and the rest
run CPU-only workers on the same nodes, so nothing queues and the measured times stay the
operator's and the control plane's, not the scheduler's wait for capacity.

The bench nodes carry their own label and taint, and bench pods select and tolerate them, so other
test sessions on the shared cluster never see their pods land on bench nodes (and vice versa).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetune_api.constants import GROUP, VERSION

BENCH_NODE_LABEL = "finetune.dev/bench-node"
BENCH_TAINT_KEY = "finetune.dev/bench"
GPU_RESOURCE = "nvidia.com/gpu"
WORKER_CYCLE = (1, 2, 3, 4)
GPU_CHOICES = (8, 4, 2, 1)


@dataclass(frozen=True)
class JobShape:
    workers: int
    gpus_per_worker: int


def job_mix(jobs: int, nodes: int, gpus_per_node: int = 8) -> list[JobShape]:
    """``jobs`` shapes (workers 1..4 in turn) that all fit on ``nodes`` nodes of ``gpus_per_node``."""
    if jobs < 1 or nodes < 1:
        raise ValueError(f"need at least one job and one node, got jobs={jobs} nodes={nodes}")
    workers = [WORKER_CYCLE[index % len(WORKER_CYCLE)] for index in range(jobs)]
    pods = sum(workers)
    capacity = nodes * gpus_per_node
    for gpus in GPU_CHOICES:
        # A pod must fit on one node, and whole pods per node: floor(gpus_per_node / gpus) * nodes.
        if gpus <= gpus_per_node and pods <= (gpus_per_node // gpus) * nodes:
            return [JobShape(w, gpus) for w in workers]
    shapes = []
    left = capacity
    for w in workers:
        gpus = 1 if w <= left else 0
        left -= w * gpus
        shapes.append(JobShape(w, gpus))
    return shapes


def mix_summary(shapes: list[JobShape]) -> dict[str, Any]:
    return {
        "jobs": len(shapes),
        "workers": sum(s.workers for s in shapes),
        "gpus": sum(s.workers * s.gpus_per_worker for s in shapes),
        "gpusPerWorker": sorted({s.gpus_per_worker for s in shapes}, reverse=True),
        "cpuOnlyJobs": sum(1 for s in shapes if s.gpus_per_worker == 0),
    }


def bench_placement() -> dict[str, Any]:
    """nodeSelector and tolerations that put a worker on a bench node and nowhere else."""
    return {
        "nodeSelector": {BENCH_NODE_LABEL: "true"},
        "tolerations": [
            {"key": BENCH_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
            # CPU-only workers do not get this from ExtendedResourceToleration.
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},
        ],
    }


def finetunejob(name: str, shape: JobShape) -> dict[str, Any]:
    """A FineTuneJob of ``shape`` placed on bench nodes (its pods never run a trainer: KWOK)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "labels": {"finetune.dev/bench": "operator-scale"}},
        "spec": {
            "image": "finetune-trainer:bench",
            "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
            "dataset": {"train": "s3://data/train.jsonl"},
            "output": {"uri": f"s3://models/{name}"},
            "storage": {"secretRef": {"name": "s3-credentials"}},
            "resources": {
                "workers": shape.workers,
                "gpusPerWorker": shape.gpus_per_worker,
                **bench_placement(),
            },
            "runPolicy": {"terminationGracePeriodSeconds": 1},
        },
    }


def bench_node(node: dict[str, Any]) -> dict[str, Any]:
    """A KWOK GPU node manifest (``localcluster.kwok.gpu_node``) made bench-only: label and taint."""
    node["metadata"]["labels"][BENCH_NODE_LABEL] = "true"
    node["spec"]["taints"] = [
        *node["spec"].get("taints", []),
        {"key": BENCH_TAINT_KEY, "value": "true", "effect": "NoSchedule"},
    ]
    return node


def job_names(prefix: str, count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"{prefix}-{index:0{width}d}" for index in range(count)]
