"""A worker pod with ``cpu: 1`` on the process node runs one thread (issue 14, item 4).

The pod is what the operator builds for a worker, reduced to the thread question: the CPU limit
reaches the container through the downward API (resourceFieldRef limits.cpu, which the process
node resolves like a kubelet), the pod's command is the real launcher around torchrun, and the
worker it starts sizes torch's pool and reports it.
"""

from __future__ import annotations

import json

import pytest

from .test_process_node import finished_pod, log_file, pod_body

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize(("cpu", "expected"), [("1", 1), ("2", 2)])
def test_worker_threads_follow_the_cpu_limit(core_v1, namespace, cpu, expected):
    name = f"threads-{cpu}"
    body = pod_body(name, "", container={
        "command": ["python", "-m", "finetune_trainer.launch", "--standalone", "--nnodes=1",
                    "--nproc-per-node=1", "-m", "finetune_trainer.threads"],
        "resources": {"limits": {"cpu": cpu}, "requests": {"cpu": "100m"}},
        "env": [{"name": "FINETUNE_CPU_LIMIT",
                 "valueFrom": {"resourceFieldRef": {"containerName": "main", "resource": "limits.cpu"}}}],
    })  # fmt: skip
    core_v1.create_namespaced_pod(namespace, body)
    pod = finished_pod(core_v1, namespace, name, timeout=180)
    text = log_file(pod).read_text()
    assert pod.status.phase == "Succeeded", text[-3000:]
    report = next(json.loads(line) for line in text.splitlines() if line.startswith('{"env"'))
    assert report["env"]["FINETUNE_CPU_LIMIT"] == cpu
    assert report["env"]["OMP_NUM_THREADS"] == str(expected)  # exported by the launcher to torchrun's worker
    assert report["threads"] == report["torch_threads"] == expected
    assert report["source"] == "env OMP_NUM_THREADS"
