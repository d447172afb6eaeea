"""`kubectl logs` against process-node pods, through the real API server and the node's TLS endpoint:
the current run, `--previous`, `--tail`, `-f` until the container exits, and clear refusals."""

from __future__ import annotations

import subprocess
import textwrap
from typing import Any

import pytest

from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster

ON_PROCESS_NODE = {
    "nodeSelector": {"finetune.dev/process-node": "true"},
    "tolerations": [{"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}],
}

# First run: two lines, exit 3. Second run: a line, then wait for /out/release, a last line, exit 0.
SCRIPT = """
    import os, time
    if not os.path.exists("/out/ran-once"):
        open("/out/ran-once", "w").close()
        print("run 1 line a", flush=True)
        print("run 1 line b", flush=True)
        raise SystemExit(3)
    print("run 2 started", flush=True)
    while not os.path.exists("/out/release"):
        time.sleep(0.1)
    print("run 2 done", flush=True)
"""


def restarting_pod(out_dir: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chatty"},
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [
                {
                    "name": "main",
                    "image": "ignored",
                    "command": ["python", "-c", textwrap.dedent(SCRIPT)],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}],
                }
            ],
            "volumes": [{"name": "out", "hostPath": {"path": out_dir}}],
            **ON_PROCESS_NODE,
        },
    }


def test_kubectl_logs_current_previous_tail_and_follow(core_v1, kubectl, cluster, namespace, tmp_path):
    core_v1.create_namespaced_pod(namespace, restarting_pod(str(tmp_path)))

    def second_run_logging() -> bool:
        result = kubectl("logs", "-n", namespace, "chatty", check=False)
        return result.returncode == 0 and "run 2 started" in result.stdout

    wait_until(second_run_logging, 60, "the second run of pod chatty to log through kubectl logs")

    assert kubectl("logs", "-n", namespace, "chatty").stdout == "run 2 started\n"
    previous = kubectl("logs", "-n", namespace, "chatty", "--previous").stdout
    assert previous == "run 1 line a\nrun 1 line b\n"
    assert kubectl("logs", "-n", namespace, "chatty", "-p", "--tail=1").stdout == "run 1 line b\n"
    refused = kubectl("logs", "-n", namespace, "chatty", "--timestamps", check=False)
    assert refused.returncode != 0 and "drop --timestamps" in refused.stderr

    follow = subprocess.Popen(
        [str(cluster.kubectl_path), "logs", "-f", "-n", namespace, "chatty"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "run 2 started\n"  # streamed while the container runs
        (tmp_path / "release").touch()
        rest, errors = follow.communicate(timeout=60)  # -f ends when the container exits
    finally:
        follow.kill()
    assert (follow.returncode, rest) == (0, "run 2 done\n"), errors


def test_kubectl_logs_for_a_missing_container_names_it(core_v1, kubectl, namespace, tmp_path):
    core_v1.create_namespaced_pod(namespace, restarting_pod(str(tmp_path)))
    result = kubectl("logs", "-n", namespace, "chatty", "-c", "sidecar", check=False)
    assert result.returncode != 0 and "sidecar" in result.stderr
