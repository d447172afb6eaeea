"""The process node runs real pods: env, logs, exit codes, termination messages, pod DNS and
TCP between pods of an Indexed Job, graceful deletion. Everything on the real local cluster."""

from __future__ import annotations

import ipaddress
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from localcluster.config import load_config

pytestmark = pytest.mark.cluster

NODE = "local-0"
ON_PROCESS_NODE = {
    "nodeSelector": {"finetune.dev/process-node": "true"},
    "tolerations": [{"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def pod_body(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "ignored", "command": ["python", "-c", textwrap.dedent(script)]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "pn-test"}},
        "spec": {"restartPolicy": "Never", "containers": [container], **ON_PROCESS_NODE, **spec},
    }


def finished_pod(core_v1, namespace: str, name: str, timeout: float = 60):
    def done():
        pod = core_v1.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(done, timeout, f"pod {namespace}/{name} to finish")


def log_file(pod) -> Path:
    meta = pod.metadata
    return load_config().log_dir / f"{meta.namespace}_{meta.name}_{meta.uid}" / "main.log"


def assert_loopback(address: str) -> None:
    assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8"), address


def test_pod_sees_its_env_writes_its_log_and_succeeds(core_v1, namespace):
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}
    )
    script = """
        import os, socket
        env = os.environ
        assert env["TOKEN"] == "s3cr3t", env["TOKEN"]
        assert env["MODE"] == "fast" and env["CFG_mode"] == "fast"
        assert env["POD_NAME"] == "envpod" and env["POD_NAMESPACE"] == env["EXPECTED_NS"]
        assert env["APP"] == "pn-test" and env["NODE"] == "local-0" and env["SA"] == "default"
        assert env["GREETING"] == "hello envpod $(UNKNOWN)"
        assert socket.gethostname() == "envpod"
        assert socket.gethostbyname("envpod") == env["POD_IP"]
        print("ENV-OK", env["POD_IP"], env["POD_UID"], flush=True)
    """
    container = {
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "EXPECTED_NS", "value": namespace},
            {"name": "GREETING", "value": "hello $(POD_NAME) $(UNKNOWN)"},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
    }
    core_v1.create_namespaced_pod(namespace, pod_body("envpod", script, container=container))

    pod = finished_pod(core_v1, namespace, "envpod")

    state = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, state.exit_code, state.reason) == ("Succeeded", 0, "Completed"), log_file(
        pod
    ).read_text()
    assert_loopback(pod.status.pod_ip)
    assert pod.status.host_ip == "127.0.0.1"
    assert f"ENV-OK {pod.status.pod_ip} {pod.metadata.uid}" in log_file(pod).read_text()


def test_exit_code_and_termination_message_reach_the_container_status(core_v1, namespace):
    script = """
        with open("/dev/termination-log", "w") as f:
            f.write("invalid dataset: label column missing")
        raise SystemExit(3)
    """
    fallback = """
        print("last words from the log")
        raise SystemExit(5)
    """
    core_v1.create_namespaced_pod(namespace, pod_body("fails", script))
    core_v1.create_namespaced_pod(
        namespace,
        pod_body("fallback", fallback, container={"terminationMessagePolicy": "FallbackToLogsOnError"}),
    )

    pod = finished_pod(core_v1, namespace, "fails")
    state = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, state.exit_code, state.reason) == ("Failed", 3, "Error")
    assert state.message == "invalid dataset: label column missing"

    state = finished_pod(core_v1, namespace, "fallback").status.container_statuses[0].state.terminated
    assert state.exit_code == 5
    assert "last words from the log" in state.message


PEER_SCRIPT = """
    import os, socket, threading, time
    index = int(os.environ["INDEX"])
    assert os.environ["JOB_COMPLETION_INDEX"] == str(index)
    me, peer = f"pair-{index}", f"pair-{1 - index}"
    assert socket.gethostname() == me
    own_ip = socket.getaddrinfo(me, None, socket.AF_INET)[0][4][0]
    assert own_ip == os.environ["POD_IP"], (own_ip, os.environ["POD_IP"])
    server = socket.create_server((own_ip, 29555))

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"from-%d:" % index + conn.recv(64))

    replier = threading.Thread(target=answer)
    replier.start()
    deadline = time.monotonic() + 90
    while True:
        try:
            for name in (f"{peer}.workers", f"{peer}.workers.{os.environ['NS']}.svc.cluster.local"):
                peer_ip = socket.getaddrinfo(name, 29555, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
            with socket.create_connection((peer_ip, 29555), timeout=5) as conn:
                conn.sendall(b"hello-from-%d" % index)
                reply = conn.recv(64)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    replier.join(90)
    print("PEER", index, peer_ip, reply.decode(), flush=True)
    assert reply == b"from-%d:hello-from-%d" % (1 - index, index)
"""


def test_indexed_job_pods_resolve_and_reach_each_other(core_v1, batch_v1, namespace):
    core_v1.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "workers"},
            "spec": {"clusterIP": "None", "selector": {"job-name": "pair"}, "publishNotReadyAddresses": True},
        },
    )
    template = pod_body("unused", PEER_SCRIPT, subdomain="workers")
    template["spec"]["containers"][0]["env"] = [
        {
            "name": "INDEX",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
            },
        },
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pair"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {"app": "pn-test"}}, "spec": template["spec"]},
        },
    }
    batch_v1.create_namespaced_job(namespace, job)

    def complete():
        status = batch_v1.read_namespaced_job("pair", namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        if conditions.get("Failed") == "True":
            pytest.fail(f"job failed: {status}")
        return conditions.get("Complete") == "True"

    wait_for(complete, 120, "the Indexed Job to complete")
    pods = core_v1.list_namespaced_pod(namespace, label_selector="job-name=pair").items
    assert len(pods) == 2
    addresses = {pod.status.pod_ip for pod in pods}
    assert len(addresses) == 2
    for pod in pods:
        assert pod.spec.node_name == NODE
        assert_loopback(pod.status.pod_ip)
        index = int(pod.metadata.annotations["batch.kubernetes.io/job-completion-index"])
        text = log_file(pod).read_text()
        assert f"PEER {index} " in text, text
        peer_ip = text.split(f"PEER {index} ")[1].split()[0]
        assert peer_ip in addresses - {pod.status.pod_ip}


def test_deleting_a_running_pod_lets_it_clean_up_within_the_grace_period(core_v1, namespace, tmp_path):
    script = """
        import signal, sys, time
        def cleanup(signum, frame):
            with open("/out/marker", "w") as f:
                f.write(f"cleaned up after signal {signum}")
            sys.exit(0)
        signal.signal(signal.SIGTERM, cleanup)
        print("READY", flush=True)
        while True:
            time.sleep(0.1)
    """
    body = pod_body(
        "graceful",
        script,
        terminationGracePeriodSeconds=30,
        volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}],
        container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
    )
    core_v1.create_namespaced_pod(namespace, body)

    def ready():
        pod = core_v1.read_namespaced_pod("graceful", namespace)
        return (
            pod.status.phase == "Running" and log_file(pod).exists() and "READY" in log_file(pod).read_text()
        )

    wait_for(ready, 60, "the pod to run and install its SIGTERM handler")
    core_v1.delete_namespaced_pod("graceful", namespace, grace_period_seconds=20)

    def gone():
        try:
            core_v1.read_namespaced_pod("graceful", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 60, "the deleted pod to disappear")
    assert (tmp_path / "marker").read_text() == "cleaned up after signal 15"


def test_on_failure_restarts_the_container_until_it_succeeds(core_v1, namespace, tmp_path):
    script = """
        import os
        if not os.path.exists("/out/first-run-done"):
            open("/out/first-run-done", "w").close()
            raise SystemExit(7)
    """
    body = pod_body(
        "retry",
        script,
        restartPolicy="OnFailure",
        volumes=[{"name": "out", "hostPath": {"path": str(tmp_path)}}],
        container={"volumeMounts": [{"name": "out", "mountPath": "/out"}]},
    )
    core_v1.create_namespaced_pod(namespace, body)

    pod = finished_pod(core_v1, namespace, "retry")

    status = pod.status.container_statuses[0]
    assert (pod.status.phase, status.restart_count) == ("Succeeded", 1)
    assert status.last_state.terminated.exit_code == 7


GLOO_PROBE = """
import socket
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
total = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(total)
print("RANK", dist.get_rank(), "SUM", total.item(), "HOST", socket.gethostname(), flush=True)
dist.destroy_process_group()
"""


def test_torchrun_gloo_all_reduce_across_two_pods(core_v1, batch_v1, namespace, tmp_path):
    (tmp_path / "probe.py").write_text(GLOO_PROBE)
    core_v1.create_namespaced_service(
        namespace,
        {"metadata": {"name": "tw"}, "spec": {"clusterIP": "None", "selector": {"job-name": "tj"}}},
    )
    command = [
        "torchrun",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        "--master-addr=tj-0.tw",
        "--master-port=29500",
        "/probe/probe.py",
    ]
    spec = {
        "restartPolicy": "Never",
        "subdomain": "tw",
        "volumes": [{"name": "probe", "hostPath": {"path": str(tmp_path)}}],
        "containers": [
            {
                "name": "main",
                "image": "ignored",
                "command": command,
                "volumeMounts": [{"name": "probe", "mountPath": "/probe"}],
            }
        ],
        **ON_PROCESS_NODE,
    }
    job = {
        "metadata": {"name": "tj"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"spec": spec},
        },
    }
    batch_v1.create_namespaced_job(namespace, job)

    def finished():
        conditions = {
            c.type: c.status for c in batch_v1.read_namespaced_job("tj", namespace).status.conditions or []
        }
        return conditions if "True" in (conditions.get("Complete"), conditions.get("Failed")) else None

    conditions = wait_for(finished, 180, "the torchrun Job to finish")
    pods = core_v1.list_namespaced_pod(namespace, label_selector="job-name=tj").items
    logs = {pod.metadata.name: log_file(pod).read_text() for pod in pods}
    assert conditions.get("Complete") == "True", logs
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert f"RANK {index} SUM 3.0 HOST tj-{index}" in logs[pod.metadata.name]
