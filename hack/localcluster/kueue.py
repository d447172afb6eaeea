"""Kueue itself on the local cluster: its CRDs, its webhooks on loopback, its controller, queues.

Why the real controller: the operator's Kueue contract (the attempt Job carries
``kueue.x-k8s.io/queue-name``, starts suspended, runs when Kueue admits it, commits a checkpoint and
waits when Kueue evicts it) can only be proven against Kueue's own admission and preemption.

How it runs here, without a registry or in-cluster Services:

- The binary is `go install`ed from the module proxy (:mod:`localcluster.binaries`); the CRDs and
  webhook manifests come from the same module version (``go mod download -json`` gives its
  directory), so they always match the controller.
- The webhooks are the release's ``manifests.yaml`` with ``clientConfig.service`` replaced by
  ``url: https://127.0.0.1:<port><path>`` and the cluster CA as ``caBundle``; Kueue serves them with
  ``pki/kueue-webhook.crt`` (internal cert management off). Loopback only (D9).
- Kueue runs with the admin kubeconfig, no leader election, only the ``batch/job`` integration, and
  metrics/health on 127.0.0.1 ports of the cluster's block.

:func:`ensure_kueue` installs and starts it on a running cluster (measured: about 5 s until ready
and the queues accepted, CRDs already present); `down` stops it with the rest. It is not started
by the default `up`: its webhooks (failurePolicy Fail) would then sit in front of every Job of
every test.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localcluster import processes
from localcluster.binaries import ensure_binaries
from localcluster.config import KUEUE_VERSION, ClusterConfig
from localcluster.processes import DaemonSpec
from localcluster.waiting import StopWaiting, wait_until

log = logging.getLogger(__name__)

KUEUE_MODULE = "sigs.k8s.io/kueue"
KUEUE_NAMESPACE = "kueue-system"
FLAVOR = "gpu-h100"
CLUSTER_QUEUE = "gpu-cluster-queue"
LOCAL_QUEUE = "gpu-queue"


def module_dir(config: ClusterConfig) -> Path:
    """Kueue's source tree of the pinned version in the Go module cache (downloaded when missing)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("Kueue's CRDs come from its Go module; install Go (https://go.dev/doc/install)")
    config.cache_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{KUEUE_MODULE}@{KUEUE_VERSION}"],
        cwd=config.cache_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"go mod download {KUEUE_MODULE}@{KUEUE_VERSION} failed: {result.stderr.strip()}")
    return Path(json.loads(result.stdout)["Dir"])


def loopback_webhooks(manifests: list[dict[str, Any]], port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The release's webhook configurations, pointed at 127.0.0.1:``port`` and trusting our CA."""
    bundle = base64.b64encode(ca_bundle).decode()
    result = []
    for manifest in manifests:
        manifest = json.loads(json.dumps(manifest))
        manifest["metadata"]["name"] = "kueue-" + manifest["metadata"]["name"]
        for hook in manifest.get("webhooks") or []:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}
        result.append(manifest)
    return result


def kueue_configuration(config: ClusterConfig) -> dict[str, Any]:
    """Kueue's Configuration file: loopback ports, our certificates, only the batch/job integration."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{config.ports.kueue_health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{config.ports.kueue_metrics}"},
        "webhook": {
            "host": "127.0.0.1",
            "port": config.ports.kueue_webhook,
            "certDir": str(cert_dir(config)),
        },
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "clientConnection": {"qps": 100, "burst": 200},
    }


def queue_objects(gpus: int) -> list[dict[str, Any]]:
    """A ResourceFlavor for the KWOK GPU nodes, a ClusterQueue with ``gpus`` GPUs, a LocalQueue.

    The ClusterQueue preempts lower-priority workloads within itself, so a higher-priority job can
    take the GPUs of a running lower one (the preemption path the operator must survive).
    """
    cpu_memory = [{"name": "cpu", "nominalQuota": "10000"}, {"name": "memory", "nominalQuota": "100Ti"}]
    return [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": CLUSTER_QUEUE},
            "spec": {
                "namespaceSelector": {},
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": FLAVOR,
                                "resources": [*cpu_memory, {"name": "nvidia.com/gpu", "nominalQuota": gpus}],
                            }
                        ],
                    }
                ],
            },
        },
    ]


def local_queue(namespace: str, name: str = LOCAL_QUEUE) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": CLUSTER_QUEUE},
    }


def cert_dir(config: ClusterConfig) -> Path:
    return config.state_dir / "kueue" / "certs"


def config_file(config: ClusterConfig) -> Path:
    return config.state_dir / "kueue" / "config.yaml"


def write_files(config: ClusterConfig) -> None:
    """Kueue's Configuration and its serving certificate under the names controller-runtime expects."""
    certs = cert_dir(config)
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.pki_dir / "kueue-webhook.crt", certs / "tls.crt")
    shutil.copyfile(config.pki_dir / "kueue-webhook.key", certs / "tls.key")
    (certs / "tls.key").chmod(0o600)
    config_file(config).write_text(yaml.safe_dump(kueue_configuration(config), sort_keys=False))


# Kueue reads its metrics serving certificate from this fixed path when internal cert management
# is off (cmd/kueue/main.go); it runs in a private mount namespace where our certificate directory
# is bind-mounted there. Only the empty mount point is created on the machine (like the process
# node's mount points); the certificate never leaves the cluster's state directory.
METRICS_CERT_PATH = "/etc/kueue/metrics/certs"


def kueue_spec(config: ClusterConfig) -> DaemonSpec:
    kueue = (
        str(config.kueue_bin_dir / "kueue"),
        f"--config={config_file(config)}",
        f"--kubeconfig={config.kubeconfig}",
        # The on-demand visibility API server would listen on :8082 on every interface (D9).
        "--feature-gates=VisibilityOnDemand=false",
        "--zap-log-level=info",
    )
    prologue = 'mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"'
    return DaemonSpec(
        name="kueue",
        argv=(
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            prologue,
            "sh",
            METRICS_CERT_PATH,
            str(cert_dir(config)),
            *kueue,
        ),
    )


def _kubectl_apply(
    config: ClusterConfig, env: dict[str, str], documents: list[dict[str, Any]] | None, *args: str
) -> None:
    text = yaml.safe_dump_all(documents) if documents is not None else None
    result = subprocess.run(
        [str(config.kubectl), "apply", "--server-side", "--force-conflicts", *args],
        input=text,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl apply {' '.join(args)} failed: {result.stderr.strip()}")


def install(config: ClusterConfig, env: dict[str, str]) -> None:
    """CRDs, webhook configurations and the kueue-system namespace (idempotent, server-side apply)."""
    source = module_dir(config)
    _kubectl_apply(config, env, None, "-f", str(source / "config" / "components" / "crd" / "bases"))
    manifests = [
        doc
        for doc in yaml.safe_load_all((source / "config/components/webhook/manifests.yaml").read_text())
        if doc
    ]
    hooks = loopback_webhooks(manifests, config.ports.kueue_webhook, (config.pki_dir / "ca.crt").read_bytes())
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}}
    _kubectl_apply(config, env, [namespace, *hooks], "-f", "-")


def start(config: ClusterConfig) -> None:
    """Start the controller unless a recorded one is alive."""
    if processes.running_process(config.run_dir, "kueue") is None:
        write_files(config)
        log.info("starting kueue %s", KUEUE_VERSION)
        processes.start_daemon(kueue_spec(config), config.run_dir, config.log_dir)


def apply_queues(config: ClusterConfig, env: dict[str, str], gpus: int) -> None:
    _kubectl_apply(config, env, queue_objects(gpus), "-f", "-")


def healthy(config: ClusterConfig) -> bool:
    """Kueue's readiness endpoint answers ok (its webhook server is serving)."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{config.ports.kueue_health}/readyz", timeout=2
        ) as reply:
            return reply.status == 200
    except OSError:
        return False


def ensure_kueue(config: ClusterConfig, env: dict[str, str], gpus: int = 8, timeout: float = 120) -> float:
    """Install, start and await Kueue with its queues on a running cluster; return the seconds it took."""
    started = time.monotonic()
    ensure_binaries(config, only=("kueue",))
    install(config, env)
    start(config)

    def ready() -> bool:
        process = processes.running_process(config.run_dir, "kueue")
        if process is None or processes.exited_early(process):
            raise StopWaiting(
                f"kueue exited; {config.log_dir}/kueue.log ends with:\n"
                f"{processes.log_tail(config.log_dir, 'kueue')}"
            )
        return healthy(config)

    wait_until(ready, timeout, "kueue to become ready", poll=0.2, hint=f"see {config.log_dir}/kueue.log")
    wait_until(lambda: _try_apply_queues(config, env, gpus), 60, "Kueue's webhooks to accept the queues")
    return round(time.monotonic() - started, 1)


def _try_apply_queues(config: ClusterConfig, env: dict[str, str], gpus: int) -> bool:
    try:
        apply_queues(config, env, gpus)
    except RuntimeError as error:
        log.info("queues not accepted yet: %s", error)
        return False
    return True
