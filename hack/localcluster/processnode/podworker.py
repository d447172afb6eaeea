"""One thread per pod: start its containers, watch them, report status, honour deletion.

Why one thread per pod: a pod's life is a sequence (prepare, init containers one by one,
containers together, restarts with back-off, graceful termination, final status, delete) that
reads best as straight code. Every decision about phases and conditions is delegated to
``podstatus``; every piece of environment to ``envvars``; processes to ``launcher``/``killing``.

Lifecycle of the worker equals the lifecycle of the pod object on this node: it ends when the
watch says the object is gone, then frees the pod's address, hosts entry and directories.
Status is written only when it changed (strategic-merge patch of the status subresource with
the pod UID as precondition), so a quiet pod causes no API traffic.
"""

from __future__ import annotations

import calendar
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.processnode import killing, launcher, probes
from localcluster.processnode.containerlogs import record_run_start
from localcluster.processnode.containerplan import plan_launch
from localcluster.processnode.envvars import EnvConfigError, PodFacts
from localcluster.processnode.hostsfile import HostsRegistry, pod_address
from localcluster.processnode.ipam import AddressAllocator
from localcluster.processnode.kube import ApiException, Kube
from localcluster.processnode.logtail import fallback_message, read_termination_message
from localcluster.processnode.nodeobject import HOST_IP
from localcluster.processnode.podstatus import (
    RUNNING,
    TERMINATED,
    WAITING,
    ContainerRecord,
    PodFactsForStatus,
    ProbeView,
    now_rfc3339,
    pod_phase,
    pod_status,
    terminated_state,
    will_restart,
)
from localcluster.processnode.projected import NodeServices, write_projected_volumes
from localcluster.processnode.state import PodDirs, PodState, save
from localcluster.processnode.statuswriter import StatusWriter

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
CONFIG_RETRY_SECONDS = 2.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


@dataclass
class NodeContext:
    """What all pod workers of one process node share."""

    kube: Kube
    node_name: str
    state_dir: Path
    log_dir: Path
    allocator: AddressAllocator
    hosts: HostsRegistry
    namespaces: bool
    shutdown_grace_seconds: float
    services: NodeServices


def _initial_records(spec: Mapping[str, Any]) -> list[ContainerRecord]:
    records = [
        ContainerRecord(name=c["name"], image=c.get("image", ""), init=True)
        for c in spec.get("initContainers") or []
    ]
    records += [
        ContainerRecord(name=c["name"], image=c.get("image", "")) for c in spec.get("containers") or []
    ]
    return records


class PodWorker:
    def __init__(
        self, ctx: NodeContext, pod: dict[str, Any], recovered: PodState | None, on_done: Any
    ) -> None:
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self._ctx = ctx
        self._pod = pod
        self._gone = False
        self._shutdown = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._on_done = on_done
        self._dirs = PodDirs(ctx.state_dir, self.uid)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_offsets: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._forced: tuple[str, str, str] | None = None
        self._delete_sent = False
        self._frozen = False
        self._final_phase = ""
        self._probers: dict[str, probes.ContainerProber] = {}
        self._refresh_at: float | None = None  # when projected volumes (tokens) are written again
        self._state = recovered or PodState(uid=self.uid, namespace=meta["namespace"], name=meta["name"])
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        self._status = StatusWriter(ctx.kube, meta["namespace"], meta["name"], self.uid, conditions)
        self._thread = threading.Thread(
            target=self._main, name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True
        )

    # --- called from other threads ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def observe(self, pod: dict[str, Any] | None) -> None:
        """The latest object from the watch; None when it is gone from the API."""
        with self._lock:
            if pod is None:
                self._gone = True
            else:
                self._pod = pod
        self._wake.set()

    def request_shutdown(self) -> None:
        self._shutdown = True
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # --- the pod's life ---------------------------------------------------------------------
    @property
    def _spec(self) -> dict[str, Any]:
        return self._pod.get("spec") or {}

    @property
    def _containers(self) -> dict[str, dict[str, Any]]:
        spec = self._spec
        return {c["name"]: c for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])}

    def _main(self) -> None:
        try:
            self._prepare()
            self._loop()
        except Exception:
            log.exception("pod worker %s/%s failed", self._state.namespace, self._state.name)
        finally:
            self._on_done(self.uid)

    def _prepare(self) -> None:
        phase = (self._pod.get("status") or {}).get("phase")
        if self._state.finished or (not self._state.containers and phase in ("Succeeded", "Failed")):
            self._frozen = True  # nothing left to run; only deletion matters
            return
        if not self._state.containers:
            self._state.containers = _initial_records(self._spec)
        for record in self._state.containers:
            if record.state == RUNNING:  # its process died with the previous process node
                record.state = TERMINATED
                record.exit_code = 137
                record.reason = "ContainerStatusUnknown"
                record.message = (
                    "the process node restarted while this container ran; its processes were stopped"
                )
                record.finished_at = now_rfc3339()
        self._state.pids.clear()
        self._dirs.create()
        self._state.ip = self._state.ip or self._ctx.allocator.allocate(self.uid)
        self._ctx.allocator.restore(self.uid, self._state.ip)
        self._state.start_time = self._state.start_time or now_rfc3339()
        save(self._dirs, self._state)
        self._ctx.hosts.add(
            pod_address(self._pod, self._state.ip),
            self._dirs.hosts_file,
            list(self._spec.get("hostAliases") or []),
        )

    def _loop(self) -> None:
        while True:
            with self._lock:
                gone, pod = self._gone, self._pod
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            if gone:
                self._terminate(float(self._spec.get("terminationGracePeriodSeconds", 30)))
                self._cleanup()
                return
            if self._shutdown:
                self._stop_for_node_shutdown()
                return
            if deleting and not self._delete_sent:
                self._finish_deletion(pod)
            elif not self._frozen:
                self._check_deadline()
                self._refresh_projected()
                self._step()
                self._after_step()
            elif self._final_phase and (self._status.last or {}).get("phase") != self._final_phase:
                self._push_status(self._final_phase)  # the write at the transition failed: retry
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    # --- running containers -----------------------------------------------------------------
    def _records(self, init: bool) -> list[ContainerRecord]:
        return [record for record in self._state.containers if record.init == init]

    def _policy(self) -> str:
        return self._spec.get("restartPolicy") or "Always"

    def _step(self) -> None:
        self._kill_unhealthy()
        self._reap()
        policy = self._policy()
        for record in self._records(init=True):
            if record.succeeded:
                continue
            if record.state == TERMINATED and not will_restart(record, policy):
                return
            if record.state != RUNNING:
                self._maybe_start(record)
            return
        for record in self._records(init=False):
            if record.state == WAITING or will_restart(record, policy):
                self._maybe_start(record)

    def _phase(self, deleting: bool = False) -> str:
        if self._forced:
            return self._forced[0]
        return pod_phase(self._records(True), self._records(False), self._policy(), deleting)

    def _after_step(self) -> None:
        phase = self._phase()
        if phase in ("Succeeded", "Failed"):
            self._become_terminal(phase)
        self._push_status(phase)

    def _become_terminal(self, phase: str) -> None:
        self._frozen = True
        self._final_phase = phase
        self._ctx.hosts.remove(self.uid)
        self._state.finished = True
        save(self._dirs, self._state)

    def _maybe_start(self, record: ContainerRecord) -> None:
        now = time.monotonic()
        if record.state == TERMINATED:
            # a restart: show CrashLoopBackOff until the back-off has passed
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**record.restart_count)
            record.last_terminated = terminated_state(record)
            record.state, record.reason = WAITING, "CrashLoopBackOff"
            record.message = (
                f"back-off {delay:g}s restarting failed container={record.name} pod={self._state.name}"
            )
            self._not_before[record.name] = now + delay
            return
        if now < self._not_before.get(record.name, 0.0):
            return
        self._start(record)

    def _lookup(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._ctx.kube.get_object(kind, self._state.namespace, name)

    def _start(self, record: ContainerRecord) -> None:
        container = self._containers[record.name]
        try:
            plan = plan_launch(
                self._pod,
                container,
                self._state.ip,
                self._ctx.node_name,
                self._dirs,
                self._ctx.namespaces,
                self._lookup,
                self._ctx.services,
            )
        except (EnvConfigError, ApiException) as error:
            record.state, record.reason = WAITING, "CreateContainerConfigError"
            record.message = str(error) if isinstance(error, EnvConfigError) else f"API error: {error.reason}"
            self._not_before[record.name] = time.monotonic() + CONFIG_RETRY_SECONDS
            return
        if record.last_terminated is not None:
            record.restart_count += 1
        stamp = now_rfc3339()
        if plan.problem:
            record.state, record.reason, record.message = TERMINATED, "StartError", plan.problem
            record.exit_code, record.started_at, record.finished_at = 128, stamp, stamp
            save(self._dirs, self._state)
            return
        log_path = self._log_path(record.name)
        self._log_offsets[record.name] = record_run_start(log_path)
        proc = launcher.spawn(plan.argv, plan.env, log_path, plan.cwd)
        self._procs[record.name] = proc
        record.state, record.reason, record.message = RUNNING, "", ""
        record.started_at, record.finished_at, record.exit_code = stamp, None, None
        record.container_id = f"processnode://{self.uid[:8]}-{record.name}-{proc.pid}"
        if plan.refresh_at is not None:
            self._refresh_at = min(self._refresh_at or plan.refresh_at, plan.refresh_at)
        target = probes.Target(
            pod_ip=self._state.ip, ports=probes.named_ports(container), pid=proc.pid, env=plan.env
        )
        prober = probes.start_prober(
            container, target, f"{self._state.namespace}/{self._state.name}", self._wake.set
        )
        if prober is not None:
            self._probers[record.name] = prober
        self._state.pids[record.name] = [proc.pid, killing.process_start_ticks(proc.pid) or 0]
        save(self._dirs, self._state)
        log.info(
            "started %s/%s container %s pid %d",
            self._state.namespace,
            self._state.name,
            record.name,
            proc.pid,
        )

    def log_target(self, container: str) -> tuple[Path, bool] | None:
        """The container's log file and whether it is running now (for the kubelet log endpoint)."""
        if all(record.name != container for record in self._state.containers):
            return None
        return self._log_path(container), container in self._procs

    @property
    def pod_key(self) -> tuple[str, str]:
        return self._state.namespace, self._state.name

    def _log_path(self, container: str) -> Path:
        return (
            self._ctx.log_dir / f"{self._state.namespace}_{self._state.name}_{self.uid}" / f"{container}.log"
        )

    def _reap(self) -> None:
        for name, proc in list(self._procs.items()):
            if proc.poll() is not None:
                self._record_exit(name, proc)

    def _record_exit(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        killing.kill_everything(f"{self.uid}/{name}", [proc.pid])  # a container ends with its main process
        code = proc.returncode
        if code < 0:
            code = 128 - code
        container = self._containers[name]
        message = read_termination_message(self._dirs.termination_file(name))
        if not message and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = fallback_message(self._log_path(name), self._log_offsets.get(name, 0))
        record = next(r for r in self._state.containers if r.name == name)
        record.state, record.exit_code, record.message = TERMINATED, code, message
        record.reason = "Completed" if code == 0 else "Error"
        record.finished_at = now_rfc3339()
        del self._procs[name]
        prober = self._probers.pop(name, None)
        if prober is not None:
            prober.stop()
        self._state.pids.pop(name, None)
        save(self._dirs, self._state)
        log.info("container %s of %s/%s exited with %d", name, self._state.namespace, self._state.name, code)

    # --- probes and projected volumes -------------------------------------------------------
    def _kill_unhealthy(self) -> None:
        """Kill containers whose liveness (or startup) probe failed; the restart policy decides the rest."""
        for name, prober in list(self._probers.items()):
            proc = self._procs.get(name)
            if not prober.failed or proc is None:
                continue
            log.info(
                "%s/%s: %s; killing container %s",
                self._state.namespace,
                self._state.name,
                prober.failed,
                name,
            )
            spec = self._containers[name].get("livenessProbe") or {}
            grace = spec.get(
                "terminationGracePeriodSeconds", self._spec.get("terminationGracePeriodSeconds", 30)
            )
            killing.signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + float(grace)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            killing.kill_everything(f"{self.uid}/{name}", [proc.pid])
            proc.wait(timeout=10)
            self._record_exit(name, proc)

    def _refresh_projected(self) -> None:
        """Write projected volumes again once their shortest-lived token is due (kubelet: at 80 %)."""
        if self._refresh_at is None or time.time() < self._refresh_at:
            return
        facts = PodFacts(pod_ip=self._state.ip, host_ip=HOST_IP, node_name=self._ctx.node_name)
        try:
            written = write_projected_volumes(
                self._pod, self._dirs.volume, facts, self._lookup, self._ctx.services.request_token
            )
        except (EnvConfigError, ApiException) as error:
            log.warning("projected volumes of %s/%s not refreshed (retrying): %s", *self.pod_key, error)
            self._refresh_at = time.time() + CONFIG_RETRY_SECONDS
            return
        self._refresh_at = written.refresh_at

    def _check_deadline(self) -> None:
        deadline = self._spec.get("activeDeadlineSeconds")
        if deadline is None or self._forced:
            return
        started = calendar.timegm(time.strptime(self._state.start_time, "%Y-%m-%dT%H:%M:%SZ"))
        if time.time() - started < float(deadline):
            return
        self._forced = (
            "Failed",
            "DeadlineExceeded",
            "Pod was active on the node longer than the specified deadline",
        )
        self._terminate(float(self._spec.get("terminationGracePeriodSeconds", 30)))

    # --- stopping -----------------------------------------------------------------------------
    def _terminate(self, grace: float) -> None:
        """SIGTERM every running container's group, wait up to ``grace``, then SIGKILL all."""
        for prober in self._probers.values():
            prober.stop()  # a container being stopped is no longer probed (nor killed for failing)
        for proc in self._procs.values():
            if proc.poll() is None:
                killing.signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0.0)
        while time.monotonic() < deadline and any(proc.poll() is None for proc in self._procs.values()):
            time.sleep(0.05)
        killing.kill_everything(f"{self.uid}/", [proc.pid for proc in self._procs.values()])
        for name, proc in list(self._procs.items()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("container %s of pod %s did not die after SIGKILL", name, self._state.name)
                continue
            self._record_exit(name, proc)
        for record in self._state.containers:
            if record.state == WAITING and not self._frozen:
                stamp = now_rfc3339()
                record.state, record.exit_code, record.reason = TERMINATED, 137, "ContainerStatusUnknown"
                record.message = "The container could not be located when the pod was terminated"
                record.started_at = record.started_at or stamp
                record.finished_at = stamp

    def _finish_deletion(self, pod: dict[str, Any]) -> None:
        if not self._frozen:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = self._spec.get("terminationGracePeriodSeconds", 30)
            self._terminate(float(grace))
            phase = self._phase(deleting=True)
            self._become_terminal(phase)
            for _ in range(5):  # the Job controller counts the pod by this last status
                if self._push_status(phase, force=True):
                    break
                time.sleep(1.0)
        try:
            self._ctx.kube.delete_pod_now(self._state.namespace, self._state.name, self.uid)
        except ApiException as error:
            if error.status not in (404, 409):
                log.warning(
                    "deleting pod %s/%s failed (will retry): %s",
                    self._state.namespace,
                    self._state.name,
                    error,
                )
                return
        self._delete_sent = True

    def _stop_for_node_shutdown(self) -> None:
        if not self._frozen:
            grace = float(self._spec.get("terminationGracePeriodSeconds", 30))
            self._terminate(min(grace, self._ctx.shutdown_grace_seconds))
            self._forced = ("Failed", "Terminated", "Pod was terminated because the process node shut down.")
            self._become_terminal("Failed")
            self._push_status("Failed", force=True)
        self._ctx.hosts.remove(self.uid)

    def _cleanup(self) -> None:
        self._ctx.hosts.remove(self.uid)
        self._ctx.allocator.release(self.uid)
        self._dirs.remove()
        log.info("pod %s/%s is gone; released %s", self._state.namespace, self._state.name, self._state.ip)

    # --- status -------------------------------------------------------------------------------
    def _push_status(self, phase: str, force: bool = False) -> bool:
        """Write the status when it changed; True when the API has it."""
        facts = PodFactsForStatus(pod_ip=self._state.ip, host_ip=HOST_IP, start_time=self._state.start_time)
        reason, message = (self._forced[1], self._forced[2]) if self._forced else ("", "")
        status = pod_status(
            self._records(True),
            self._records(False),
            phase,
            facts,
            self._status.conditions,
            now_rfc3339(),
            reason,
            message,
            {name: ProbeView(ready=p.ready, started=p.started) for name, p in self._probers.items()},
        )
        return self._status.write(status, force)
