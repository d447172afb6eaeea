"""Bring the whole local cluster up, tear it down, report its state.

Why one orchestrator: the CLI (`make cluster-up`), the pytest plugin and `make demo` must start
the same thing the same way. `up` is idempotent: a component whose recorded process is alive and
healthy is reused, a missing one is started, and everything is awaited by health checks with
deadlines. Independent components start together (etcd with S3; controller manager, scheduler
and KWOK once the API server is ready) because startup time is mostly waiting.

`down` stops what `up` started (pid files) and, unless asked to keep it, removes the cluster's
data (etcd, S3, KWOK and process-node state) so the next `up` starts clean; certificates and logs
stay. The file ``run/started-by`` records who started the running cluster ("cli" or "pytest")
so the test plugin never stops a cluster a developer started.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kubernetes import client

from localcluster import controlplane, health, kueue, kwok, pki, processes, s3
from localcluster.binaries import ensure_binaries
from localcluster.config import (
    S3_ACCESS_KEY,
    S3_DEFAULT_BUCKET,
    S3_SECRET_KEY,
    ClusterConfig,
)
from localcluster.kubeconfig import env_values, render_env, render_kubeconfig
from localcluster.processes import DaemonSpec
from localcluster.waiting import StopWaiting, wait_until

log = logging.getLogger(__name__)

PROCESS_NODE_NAME = "local-0"
PROCESS_NODE_MODULE = "localcluster.processnode"
# Order of `down` (reverse dependency order); `status` lists them in start order.
# Kueue is started only on request (localcluster.kueue.ensure_kueue) but stopped with the rest.
DAEMONS = (
    "etcd", "s3", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "processnode",
    "kueue",
)  # fmt: skip


@dataclass(frozen=True)
class Component:
    """A daemon with how to build its spec, how to tell it is healthy, how long to wait."""

    name: str
    spec: Callable[[ClusterConfig], DaemonSpec]
    healthy: Callable[[ClusterConfig], bool]
    timeout: float


@contextmanager
def cluster_lock(config: ClusterConfig) -> Iterator[None]:
    """Serialise `up`/`down` of one state directory across processes (parallel test sessions)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Ports each component listens on (attribute names of config.Ports), checked free before a start.
COMPONENT_PORTS = {
    "etcd": ("etcd_client", "etcd_peer"),
    "s3": ("s3", "weed_master", "weed_volume", "weed_filer", "weed_admin"),
    "kube-apiserver": ("apiserver",),
    "kube-controller-manager": ("controller_manager",),
    "kube-scheduler": ("scheduler",),
    "kwok": ("kwok",),
}


def _ensure_started(component: Component, config: ClusterConfig) -> processes.psutil.Process | None:
    """Start ``component`` unless a live, recorded process exists; return the new process if started."""
    if processes.running_process(config.run_dir, component.name) is not None:
        return None
    for attribute in COMPONENT_PORTS.get(component.name, ()):
        port = getattr(config.ports, attribute)
        if processes.port_in_use(port):
            raise RuntimeError(
                f"cannot start {component.name}: port 127.0.0.1:{port} is taken by a process that this "
                f"cluster ({config.state_dir}) did not start; stop it, or move this cluster with "
                f"LOCALCLUSTER_PORT_BASE (now {config.ports.base}) and LOCALCLUSTER_DIR"
            )
    log.info("starting %s", component.name)
    return processes.start_daemon(component.spec(config), config.run_dir, config.log_dir)


def _await_healthy(components: list[Component], config: ClusterConfig) -> None:
    for component in components:

        def check(component: Component = component) -> bool:
            process = processes.running_process(config.run_dir, component.name)
            if process is None or processes.exited_early(process):
                raise StopWaiting(
                    f"{component.name} exited during startup; its log {config.log_dir}/{component.name}.log "
                    f"ends with:\n{processes.log_tail(config.log_dir, component.name)}"
                )
            return component.healthy(config)

        try:
            wait_until(check, component.timeout, f"{component.name} to become healthy", poll=0.1)
        except TimeoutError as error:
            raise TimeoutError(
                f"{error}; see {config.log_dir}/{component.name}.log:\n"
                f"{processes.log_tail(config.log_dir, component.name)}"
            ) from None


def _start_group(components: list[Component], config: ClusterConfig) -> None:
    for component in components:
        _ensure_started(component, config)
    _await_healthy(components, config)


def _write_kubeconfigs(config: ClusterConfig) -> None:
    ca = config.pki_dir / "ca.crt"
    for identity, target in (
        (pki.ADMIN, config.kubeconfig),
        (pki.CONTROLLER_MANAGER, controlplane.component_kubeconfig(config, "controller-manager")),
        (pki.SCHEDULER, controlplane.component_kubeconfig(config, "scheduler")),
    ):
        cert = config.pki_dir / f"{identity.file_stem}.crt"
        key = config.pki_dir / f"{identity.file_stem}.key"
        text = render_kubeconfig(config.apiserver_url, ca, cert, key, identity.common_name)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            target.chmod(0o600)


def _write_env(config: ClusterConfig) -> None:
    values = env_values(
        config.kubeconfig,
        config.kubernetes_bin_dir,
        config.s3_endpoint,
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
        S3_DEFAULT_BUCKET,
    )
    config.env_file.write_text(render_env(values))


def _process_node_spec(config: ClusterConfig) -> DaemonSpec:
    return DaemonSpec(
        name="processnode",
        argv=(
            sys.executable,
            "-m",
            PROCESS_NODE_MODULE,
            "--kubeconfig",
            str(config.kubeconfig),
            "--node-name",
            PROCESS_NODE_NAME,
            "--state-dir",
            str(config.process_node_dir),
            "--log-dir",
            str(config.log_dir),
            "--pod-cidr",
            config.process_node_pod_cidr,
            "--kubelet-port",
            str(config.ports.process_node_kubelet),
            "--tls-cert-file",
            str(config.pki_dir / "processnode.crt"),
            "--tls-private-key-file",
            str(config.pki_dir / "processnode.key"),
            "--client-ca-file",
            str(config.pki_dir / "ca.crt"),
        ),
    )


def process_node_available() -> bool:
    """The process node is written by another part of the project; until it exists, skip it."""
    try:
        return importlib.util.find_spec(f"{PROCESS_NODE_MODULE}.__main__") is not None
    except ModuleNotFoundError:
        return False


def _components(config: ClusterConfig) -> dict[str, Component]:
    kwok_config, changed = kwok.write_kwok_config(config)
    if changed:  # a running KWOK still plays the old stages
        processes.stop_daemon(config.run_dir, "kwok")
    identities = s3.write_identities(config)
    return {
        "etcd": Component("etcd", controlplane.etcd_spec, health.etcd_healthy, 30),
        "s3": Component("s3", lambda c: s3.weed_spec(c, identities), health.s3_healthy, 60),
        "kube-apiserver": Component(
            "kube-apiserver", controlplane.apiserver_spec, health.apiserver_ready, 90
        ),
        "kube-controller-manager": Component(
            "kube-controller-manager",
            controlplane.controller_manager_spec,
            health.controller_manager_healthy,
            60,
        ),
        "kube-scheduler": Component(
            "kube-scheduler", controlplane.scheduler_spec, health.scheduler_healthy, 60
        ),
        "kwok": Component("kwok", lambda c: kwok.kwok_spec(c, kwok_config), health.kwok_healthy, 60),
    }


def _node_ready_or_fail(config: ClusterConfig, core: client.CoreV1Api, name: str) -> bool:
    owner = "processnode" if name == PROCESS_NODE_NAME else "kwok"
    if processes.running_process(config.run_dir, owner) is None:
        raise StopWaiting(
            f"{owner} exited before node {name} became Ready; its log {config.log_dir}/{owner}.log "
            f"ends with:\n{processes.log_tail(config.log_dir, owner)}"
        )
    return health.node_ready(core, name)


def up(config: ClusterConfig, owner: str = "cli") -> dict[str, float]:
    """Start (or reuse) every component and wait until the cluster is usable; return phase timings."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    with cluster_lock(config):
        timings.update({f"build {k}": v for k, v in ensure_binaries(config).items()})
        for directory in (config.run_dir, config.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        service_ip = controlplane.first_service_ip()
        pki.ensure_pki(config.pki_dir, service_ip)
        _write_kubeconfigs(config)
        components = _components(config)
        fresh = processes.running_process(config.run_dir, "kube-apiserver") is None
        if fresh or owner == "cli":  # recorded before starting, so a failed start is still cleaned up
            (config.run_dir / "started-by").write_text(owner)

        for name in ("etcd", "s3"):
            _ensure_started(components[name], config)
        _await_healthy([components["etcd"]], config)
        _start_group([components["kube-apiserver"]], config)
        timings["apiserver ready"] = round(time.monotonic() - started, 1)
        _start_group([components[n] for n in ("kube-controller-manager", "kube-scheduler", "kwok")], config)

        with health.api_client(config) as api:
            core = client.CoreV1Api(api)
            kwok.create_gpu_nodes(core)
            if process_node_available():
                _ensure_started(Component("processnode", _process_node_spec, lambda c: True, 0), config)
                node_names = [*kwok.DEFAULT_GPU_NODES, PROCESS_NODE_NAME]
            else:
                log.warning("%s is not installed yet; starting without the process node", PROCESS_NODE_MODULE)
                node_names = list(kwok.DEFAULT_GPU_NODES)
            for name in node_names:
                wait_until(
                    lambda name=name: _node_ready_or_fail(config, core, name),
                    90,
                    f"node {name} to be Ready and untainted",
                    hint=f"see {config.log_dir}/kwok.log, processnode.log and kube-controller-manager.log",
                )
            wait_until(
                lambda: core.read_namespaced_service_account("default", "default"),
                60,
                "the default ServiceAccount (kube-controller-manager's serviceaccount controller)",
                hint=f"see {config.log_dir}/kube-controller-manager.log",
            )
        _await_healthy([components["s3"]], config)
        wait_until(lambda: s3.bucket_ready(config.s3_endpoint), 30, f"S3 bucket {S3_DEFAULT_BUCKET}")
        _write_env(config)
    timings["total"] = round(time.monotonic() - started, 1)
    return timings


def started_by(config: ClusterConfig) -> str | None:
    try:
        return (config.run_dir / "started-by").read_text().strip()
    except FileNotFoundError:
        return None


def down(config: ClusterConfig, keep_data: bool = False) -> list[str]:
    """Stop every recorded daemon; unless ``keep_data``, remove cluster data.

    The process node goes first, while the API server can still take its pods' last status;
    the rest stop together (nothing of theirs needs the others on the way down)."""
    with cluster_lock(config):
        stopped = processes.stop_daemons(config.run_dir, ["processnode"])
        stopped += processes.stop_daemons(
            config.run_dir, [n for n in reversed(DAEMONS) if n != "processnode"]
        )
        (config.run_dir / "started-by").unlink(missing_ok=True)
        if not keep_data:
            for directory in (config.etcd_data_dir, config.s3_dir, config.kwok_dir, config.process_node_dir):
                shutil.rmtree(directory, ignore_errors=True)
            config.env_file.unlink(missing_ok=True)
    return stopped


def is_live(config: ClusterConfig) -> bool:
    """True when a kubeconfig exists and the API server it names answers /readyz."""
    return config.kubeconfig.exists() and health.apiserver_ready(config)


def _process_node_healthy(config: ClusterConfig) -> bool:
    try:
        with health.api_client(config) as api:
            return health.node_ready(client.CoreV1Api(api), PROCESS_NODE_NAME)
    except Exception:  # no API server, no node: not healthy
        return False


def status(config: ClusterConfig) -> dict[str, dict[str, object]]:
    """Per daemon: pid (or None) and whether its health check passes."""
    checks: dict[str, Callable[[ClusterConfig], bool]] = {
        "etcd": health.etcd_healthy,
        "s3": health.s3_healthy,
        "kube-apiserver": health.apiserver_ready,
        "kube-controller-manager": health.controller_manager_healthy,
        "kube-scheduler": health.scheduler_healthy,
        "kwok": health.kwok_healthy,
        "processnode": _process_node_healthy,
        "kueue": kueue.healthy,
    }
    report: dict[str, dict[str, object]] = {}
    for name in DAEMONS:
        process = processes.running_process(config.run_dir, name)
        report[name] = {
            "pid": process.pid if process else None,
            "healthy": bool(process) and checks[name](config),
        }
    return report
