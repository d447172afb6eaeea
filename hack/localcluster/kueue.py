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
  ``pki/kueue-webhook.crt`` (internal cert management off). Loopback only (docs/architecture.md,
  "Loopback only").
- Only the webhooks of the ``batch/job`` integration and of Kueue's own objects are installed, and
  every one is scoped to namespaces labelled ``localcluster.finetune.dev/kueue=enabled``
  (:data:`NAMESPACE_LABEL`, see :func:`enable_namespace`); Kueue manages Jobs only there too
  (``managedJobsNamespaceSelector``). The webhooks fail closed, so unscoped they would refuse every
  Job of every test while Kueue is down; scoped, Kueue may run (or not) on the shared cluster while
  other tests create Jobs, and only namespaces that opted in depend on it.
- Kueue runs with the admin kubeconfig, no leader election, only the ``batch/job`` integration, and
  metrics/health on 127.0.0.1 ports of the cluster's block.

:func:`ensure_kueue` installs and starts it on a running cluster (measured on 2 loaded cores: 22.7 s
on a fresh cluster, mostly applying the CRDs; 1.0 s when Kueue already runs); `down` stops it with
the rest. It is not started
by the default `up` (it costs start-up time and a watch of every Job, and only the Kueue
tests need it); ``python -m localcluster.kueue`` starts it by hand.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localcluster import processes
from localcluster.binaries import ensure_binaries
from localcluster.config import KUEUE_VERSION, ClusterConfig, load_config
from localcluster.kubeconfig import parse_env
from localcluster.processes import DaemonSpec
from localcluster.waiting import StopWaiting, wait_until

log = logging.getLogger(__name__)

KUEUE_MODULE = "sigs.k8s.io/kueue"
KUEUE_NAMESPACE = "kueue-system"
FLAVOR = "gpu-h100"
PROCESS_NODE_FLAVOR = "process-node"
CLUSTER_QUEUE = "gpu-cluster-queue"
LOCAL_QUEUE = "gpu-queue"
NAMESPACE_LABEL = "localcluster.finetune.dev/kueue"
"""Kueue's webhooks and job management apply only in namespaces with this label set to ``enabled``."""
NAMESPACE_SELECTOR = {"matchLabels": {NAMESPACE_LABEL: "enabled"}}
WEBHOOK_API_GROUPS = frozenset({"batch", "kueue.x-k8s.io"})
"""The webhooks installed: the batch/job integration's and those of Kueue's own objects."""


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
    """The release's webhook configurations for Jobs and Kueue's objects, pointed at
    127.0.0.1:``port``, trusting our CA, and scoped to namespaces that opted in (NAMESPACE_SELECTOR;
    cluster-scoped objects such as ClusterQueues are matched whatever the selector)."""
    bundle = base64.b64encode(ca_bundle).decode()
    result = []
    for manifest in manifests:
        manifest = json.loads(json.dumps(manifest))
        manifest["metadata"]["name"] = "kueue-" + manifest["metadata"]["name"]
        hooks = [
            hook
            for hook in manifest.get("webhooks") or []
            if any(WEBHOOK_API_GROUPS & set(rule.get("apiGroups") or ()) for rule in hook.get("rules") or ())
        ]
        for hook in hooks:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": bundle}
            hook["namespaceSelector"] = json.loads(json.dumps(NAMESPACE_SELECTOR))
        manifest["webhooks"] = hooks
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
        "managedJobsNamespaceSelector": NAMESPACE_SELECTOR,
        "integrations": {"frameworks": ["batch/job"]},
        "clientConnection": {"qps": 100, "burst": 200},
    }


def flavors() -> list[dict[str, Any]]:
    """ResourceFlavors: the KWOK GPU nodes, and the process node (pods that really run).

    Kueue writes the admitted flavor's nodeLabels into the pod template, so each flavor names
    exactly the nodes its pods may land on; a process-node job admitted under the GPU flavor would
    be pinned to KWOK nodes and never run.
    """
    return [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": PROCESS_NODE_FLAVOR},
            "spec": {"nodeLabels": {"finetune.dev/process-node": "true"}},
        },
    ]


def cluster_queue(
    name: str, flavor: str, quota: dict[str, str | int], namespace_selector: dict[str, Any]
) -> dict[str, Any]:
    """A ClusterQueue with one flavor: ``quota`` for the scarce resources, plenty of the others.

    It preempts lower-priority workloads within itself, so a higher-priority job can take the
    resources of a running lower one (the preemption path the operator must survive). It covers
    every resource our pods request: a Workload asking for a resource its ClusterQueue does not list
    is never admitted, and our workers request ephemeral-storage (their scratch space) as well as
    cpu, memory and GPUs.
    """
    amounts: dict[str, str | int] = {
        "cpu": "10000",
        "memory": "100Ti",
        "ephemeral-storage": "100Ti",
        "nvidia.com/gpu": 10000,
        **quota,
    }
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": namespace_selector,
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [
                {
                    "coveredResources": list(amounts),
                    "flavors": [
                        {
                            "name": flavor,
                            "resources": [
                                {"name": resource, "nominalQuota": amount}
                                for resource, amount in amounts.items()
                            ],
                        }
                    ],
                }
            ],
        },
    }


def queue_objects(gpus: int) -> list[dict[str, Any]]:
    """The ResourceFlavors and the shared ClusterQueue of ``gpus`` GPUs on the KWOK nodes."""
    return [*flavors(), cluster_queue(CLUSTER_QUEUE, FLAVOR, {"nvidia.com/gpu": gpus}, {})]


def local_queue(namespace: str, name: str = LOCAL_QUEUE, queue: str = CLUSTER_QUEUE) -> dict[str, Any]:
    """A LocalQueue of ClusterQueue ``queue`` in ``namespace`` (FineTuneJobs name it in their label)."""
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": queue},
    }


def namespace_queues(
    namespace: str, flavor: str, quota: dict[str, str | int], name: str = LOCAL_QUEUE
) -> list[dict[str, Any]]:
    """A ClusterQueue ``cq-<namespace>`` with ``quota`` that serves only ``namespace``, and its
    LocalQueue ``name`` there.

    Why one per namespace: tests in parallel (and several test sessions on the shared cluster) each
    get their own quota, so one test's gangs never take another's resources or preempt them.
    """
    queue = f"cq-{namespace}"
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return [cluster_queue(queue, flavor, quota, selector), local_queue(namespace, name, queue)]


def enable_namespace(config: ClusterConfig, env: dict[str, str], namespace: str) -> None:
    """Label ``namespace`` so Kueue's webhooks and job management apply to it (NAMESPACE_LABEL)."""
    result = subprocess.run(
        [str(config.kubectl), "label", "--overwrite", "namespace", namespace, f"{NAMESPACE_LABEL}=enabled"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl label namespace {namespace} failed: {result.stderr.strip()}")


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
        # The on-demand visibility API server would listen on :8082 on every interface; we bind loopback only.
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
    crds = source / "config" / "components" / "crd" / "bases"
    _kubectl_apply(config, env, None, "-f", str(crds))
    # Kueue exits at start-up when its kinds are not served yet (a fresh cluster's first install).
    result = subprocess.run(
        [str(config.kubectl), "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Kueue's CRDs were not established within 60 s: {result.stderr.strip()}")
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
    """The ResourceFlavor and the shared ClusterQueue with ``gpus`` GPUs (server-side apply)."""
    _kubectl_apply(config, env, queue_objects(gpus), "-f", "-")


def apply_objects(config: ClusterConfig, env: dict[str, str], documents: list[dict[str, Any]]) -> None:
    """Server-side apply of Kueue objects (e.g. :func:`namespace_queues`)."""
    _kubectl_apply(config, env, documents, "-f", "-")


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
    if processes.running_process(config.run_dir, "kueue") is None or not healthy(config):
        # Applying Kueue's CRDs costs seconds (they are large); a running, ready Kueue has them.
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


def main() -> int:
    """``python -m localcluster.kueue``: start Kueue on the running local cluster, by hand."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config()
    if not config.env_file.exists():
        raise SystemExit(f"no cluster at {config.state_dir}: run `make cluster-up` first")
    env = {**os.environ, **parse_env(config.env_file.read_text(), os.environ.get("PATH", ""))}
    seconds = ensure_kueue(config, env)
    print(
        f"kueue {KUEUE_VERSION} ready in {seconds}s; ClusterQueue {CLUSTER_QUEUE}. In a namespace: "
        f"kubectl label namespace NS {NAMESPACE_LABEL}=enabled, then create LocalQueue {LOCAL_QUEUE} "
        f"(spec.clusterQueue: {CLUSTER_QUEUE}) and label FineTuneJobs kueue.x-k8s.io/queue-name={LOCAL_QUEUE}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
