"""The process node as a whole: recover, register the node, watch its pods, shut down cleanly.

Why a list-then-watch loop of our own: pods bound to this node are the only input. A list
gives the full truth (and tells which pods vanished while we were not looking); a watch from
its resourceVersion gives the changes. When the watch expires (410 Gone) or the connection
breaks, we list again, exactly like a client-go informer but without a cache we do not need.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.processnode import killing, launcher
from localcluster.processnode.hostsfile import HostsRegistry
from localcluster.processnode.ipam import DEFAULT_POD_CIDR, AddressAllocator
from localcluster.processnode.kube import ApiException, Kube
from localcluster.processnode.logserver import KubeletLogServer, LogTarget, TLSFiles
from localcluster.processnode.nodeobject import NodeHeartbeat
from localcluster.processnode.podworker import NodeContext, PodWorker
from localcluster.processnode.projected import ApiServerAddress, NodeServices
from localcluster.processnode.state import PodDirs, PodState, load_all

log = logging.getLogger(__name__)

WATCH_SECONDS = 240
REGISTER_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Options:
    kubeconfig: str
    node_name: str
    state_dir: Path
    log_dir: Path
    pod_cidr: str = DEFAULT_POD_CIDR
    cpu: int | None = None
    shutdown_grace_seconds: float = 15.0
    kubelet_port: int = 0  # 0: no log endpoint
    kubelet_tls: TLSFiles | None = None


def kill_orphans(state: PodState) -> None:
    """Stop processes a previous process node left running for this pod."""
    pgids = [pid for pid, ticks in state.pids.values() if killing.process_start_ticks(pid) in (ticks, None)]
    killing.kill_everything(f"{state.uid}/", pgids)


class ProcessNode:
    def __init__(self, options: Options) -> None:
        self._options = options
        self._stop = threading.Event()
        self._kube = Kube(options.kubeconfig)
        self._workers: dict[str, PodWorker] = {}
        self._workers_lock = threading.Lock()
        self._recovered: dict[str, PodState] = {}
        namespaces = launcher.unshare_works()
        if not namespaces:
            log.warning(
                "unshare --mount --uts does not work here (needs root): pods run without their own "
                "/etc/hosts, hostname and volume mounts; pod DNS names will not resolve"
            )
        self._ctx = NodeContext(
            kube=self._kube,
            node_name=options.node_name,
            state_dir=options.state_dir,
            log_dir=options.log_dir,
            allocator=AddressAllocator(options.pod_cidr),
            hosts=HostsRegistry(),
            namespaces=namespaces,
            shutdown_grace_seconds=options.shutdown_grace_seconds,
            services=NodeServices(
                api_server=ApiServerAddress.from_url(self._kube.server_url),
                request_token=self._kube.request_token,
            ),
        )
        self._heartbeat = NodeHeartbeat(self._kube, options.node_name, options.cpu, options.kubelet_port)
        self._log_server: KubeletLogServer | None = None
        if options.kubelet_port and options.kubelet_tls is not None:
            self._log_server = KubeletLogServer(options.kubelet_port, self.log_target, options.kubelet_tls)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        self._options.state_dir.mkdir(parents=True, exist_ok=True)
        self._options.log_dir.mkdir(parents=True, exist_ok=True)
        for state in load_all(self._options.state_dir):
            kill_orphans(state)
            if state.ip:
                self._ctx.allocator.restore(state.uid, state.ip)
            self._recovered[state.uid] = state
        if self._log_server is not None:
            self._log_server.start()
        self._register()
        self._heartbeat.start()
        watcher = threading.Thread(target=self._watch_forever, name="pod-watch", daemon=True)
        watcher.start()
        self._stop.wait()
        self._shutdown()

    def _register(self) -> None:
        attempts = 0
        while not self._stop.is_set():
            try:
                self._heartbeat.register()
                return
            except Exception as error:
                attempts += 1
                if attempts * 2 > REGISTER_TIMEOUT_SECONDS:
                    raise RuntimeError(
                        f"could not register node {self._options.node_name} with the API server of "
                        f"{self._options.kubeconfig}: {error}; is the control plane running?"
                    ) from error
                self._stop.wait(2)

    # --- watching ---------------------------------------------------------------------------
    def _watch_forever(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self._kube.list_pods(self._options.node_name)
                self._sync(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                while not self._stop.is_set():
                    version = self._watch_once(version)
            except _Relist:
                continue
            except Exception as error:
                log.warning("pod watch broke (%s); listing again", error)
                self._stop.wait(1)

    def _watch_once(self, version: str) -> str:
        try:
            for event in self._kube.watch_pods(self._options.node_name, version, WATCH_SECONDS):
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise _Relist()
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self._gone(obj["metadata"]["uid"])
                else:
                    self._dispatch(obj)
                if self._stop.is_set():
                    break
        except ApiException as error:
            if error.status == 410:
                raise _Relist() from error
            raise
        return version

    def _sync(self, pods: list[dict[str, Any]]) -> None:
        present = {pod["metadata"]["uid"] for pod in pods}
        for pod in pods:
            self._dispatch(pod)
        with self._workers_lock:
            vanished = [uid for uid in self._workers if uid not in present]
        for uid in vanished:
            self._gone(uid)
        for uid in [uid for uid in self._recovered if uid not in present]:
            state = self._recovered.pop(uid)  # deleted while the process node was down
            self._ctx.allocator.release(uid)
            PodDirs(self._options.state_dir, uid).remove()
            log.info("pod %s/%s vanished while the process node was down", state.namespace, state.name)

    def _dispatch(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._workers_lock:
            worker = self._workers.get(uid)
            if worker is None:
                if self._stop.is_set():
                    return
                worker = PodWorker(self._ctx, pod, self._recovered.pop(uid, None), self._worker_done)
                self._workers[uid] = worker
                worker.start()
                return
        worker.observe(pod)

    def _gone(self, uid: str) -> None:
        with self._workers_lock:
            worker = self._workers.get(uid)
        if worker is not None:
            worker.observe(None)

    def log_target(self, namespace: str, name: str, container: str) -> LogTarget | None:
        """Where the log of a container of a pod on this node is (None: no such pod or container)."""
        with self._workers_lock:
            workers = [w for w in self._workers.values() if w.pod_key == (namespace, name)]
        for worker in workers:
            found = worker.log_target(container)
            if found is not None:
                return LogTarget(found[0], lambda worker=worker: _running(worker, container))
        return None

    def _worker_done(self, uid: str) -> None:
        with self._workers_lock:
            self._workers.pop(uid, None)

    # --- stopping ---------------------------------------------------------------------------
    def _shutdown(self) -> None:
        log.info("shutting down: stopping every pod")
        self._heartbeat.stop()
        if self._log_server is not None:
            self._log_server.stop()
        with self._workers_lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.request_shutdown()
        for worker in workers:
            worker.join(self._options.shutdown_grace_seconds + 20)


def _running(worker: PodWorker, container: str) -> bool:
    found = worker.log_target(container)
    return found is not None and found[1]


class _Relist(Exception):
    """The watch cannot continue from its resourceVersion."""
