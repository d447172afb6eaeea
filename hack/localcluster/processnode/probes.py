"""Startup, liveness and readiness probes of a container, run as a kubelet's prober runs them.

Why: a Deployment rolls out only when its new pod is Ready, and a pod with a readiness probe is
Ready only once the probe passed (the chart's operator is probed on its Kopf ``/healthz``). Saying
"running means ready" would make a rollout look finished before the program listens, and a hung
program would never be restarted. So each container run with probes gets one thread that

- waits ``initialDelaySeconds`` after the container started, then probes every ``periodSeconds``
  with ``timeoutSeconds``;
- runs the startup probe alone until it succeeds (liveness and readiness wait for it);
- turns a result around only after ``successThreshold`` consecutive successes or
  ``failureThreshold`` consecutive failures (:class:`Threshold`, pure);
- reports readiness (``ready``), ``started``, and ``failed`` (the liveness or startup probe failed:
  the pod worker then kills the container and applies the restart policy).

Actions: ``httpGet`` (to ``host`` or the pod IP; port by number or by the container port's name;
HTTP or HTTPS without certificate checks, as the kubelet does; success is a status in
[200, 400)), ``tcpSocket`` (a connection opens), ``exec`` (the command runs inside the
container's own mount and UTS namespaces via ``nsenter``, with the container's environment; exit
0). ``grpc`` probes are not supported and count as failures, with a message saying so.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a container with the kubelet's defaults filled in."""

    kind: str
    action: Mapping[str, Any]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def from_spec(cls, kind: str, probe: Mapping[str, Any]) -> ProbeSpec:
        return cls(
            kind=kind,
            action=probe,
            initial_delay=float(probe.get("initialDelaySeconds", 0)),
            period=float(probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            success_threshold=int(probe.get("successThreshold", 1)),
            failure_threshold=int(probe.get("failureThreshold", 3)),
        )


def container_probes(container: Mapping[str, Any]) -> dict[str, ProbeSpec]:
    """kind -> probe for the probes the container declares."""
    return {kind: ProbeSpec.from_spec(kind, container[kind]) for kind in KINDS if container.get(kind)}


class Threshold:
    """A probe's result: flips only after enough consecutive outcomes of the other kind."""

    def __init__(self, spec: ProbeSpec, initial: bool) -> None:
        self._spec = spec
        self.result = initial
        self._streak = 0  # consecutive outcomes that disagree with the result

    def observe(self, success: bool) -> bool:
        """Record one outcome; True when the result changed."""
        if success == self.result:
            self._streak = 0
            return False
        self._streak += 1
        needed = self._spec.success_threshold if success else self._spec.failure_threshold
        if self._streak < needed:
            return False
        self.result, self._streak = success, 0
        return True


@dataclass(frozen=True)
class Target:
    """What a probe of one container run talks to."""

    pod_ip: str
    ports: Mapping[str, int]  # container port name -> number
    pid: int  # the container's main process (its namespaces are the container's)
    env: Mapping[str, str]


def resolve_port(port: Any, target: Target) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in target.ports:
        return target.ports[port]
    raise ValueError(f"port {port!r} is not a named port of the container")


def _http_get(action: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    port = resolve_port(action.get("port"), target)
    path = action.get("path") or "/"
    headers = {header["name"]: header["value"] for header in action.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/processnode")
    if str(action.get("scheme", "HTTP")).upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the kubelet does not verify probe certificates either
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


def _tcp(action: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    with socket.create_connection((host, resolve_port(action.get("port"), target)), timeout=timeout):
        return True, ""


def _exec(action: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    command = list(action.get("command") or [])
    argv = ["nsenter", f"--target={target.pid}", "--mount", "--uts", "--", *command]
    try:
        done = subprocess.run(argv, env=dict(target.env), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    if done.returncode == 0:
        return True, ""
    return False, (done.stdout + done.stderr).decode(errors="replace")[-1024:]


def run_probe(spec: ProbeSpec, target: Target) -> tuple[bool, str]:
    """One attempt: (success, message)."""
    action = spec.action
    try:
        if "httpGet" in action:
            return _http_get(action["httpGet"], target, spec.timeout)
        if "tcpSocket" in action:
            return _tcp(action["tcpSocket"], target, spec.timeout)
        if "exec" in action:
            return _exec(action["exec"], target, spec.timeout)
    except (OSError, ValueError, http.client.HTTPException) as error:
        return False, f"{spec.kind} failed: {error}"
    return False, f"{spec.kind}: only httpGet, tcpSocket and exec probes are supported by the process node"


class ContainerProber:
    """The probes of one container run, on a thread of their own."""

    def __init__(
        self, where: str, probes: Mapping[str, ProbeSpec], target: Target, on_change: Callable[[], None]
    ) -> None:
        self._where = where
        self._probes = dict(probes)
        self._target = target
        self._on_change = on_change
        self._stop = threading.Event()
        self._started_at = time.monotonic()
        self.started = "startupProbe" not in probes
        self.ready = "readinessProbe" not in probes and self.started
        self.failed = ""  # why the liveness or startup probe failed; empty while it has not
        self._thread = threading.Thread(target=self._run, name=f"probe-{where}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            startup = self._probes.get("startupProbe")
            if startup is not None and not self._until_started(startup):
                return
            self._loop()
        except Exception:
            log.exception("prober of %s failed", self._where)

    def _until_started(self, spec: ProbeSpec) -> bool:
        """Probe until the first success (startup probes need exactly one) or too many failures."""
        if self._stop.wait(spec.initial_delay):
            return False
        failures = 0
        while True:
            ok, message = run_probe(spec, self._target)
            if ok:
                self.started = True
                self.ready = "readinessProbe" not in self._probes
                self._on_change()
                return True
            failures += 1
            if failures >= spec.failure_threshold:
                self._fail(f"Startup probe failed: {message}")
                return False
            if self._stop.wait(spec.period):
                return False

    def _loop(self) -> None:
        running = {kind: spec for kind, spec in self._probes.items() if kind != "startupProbe"}
        if not running:
            return
        begin = time.monotonic()
        due = {kind: max(begin, self._started_at + spec.initial_delay) for kind, spec in running.items()}
        # liveness starts out passing, readiness failing (as on a kubelet)
        thresholds = {kind: Threshold(spec, kind == "livenessProbe") for kind, spec in running.items()}
        while not self._stop.is_set():
            kind = min(due, key=lambda name: due[name])
            if self._stop.wait(max(0.0, due[kind] - time.monotonic())):
                return
            spec = running[kind]
            ok, message = run_probe(spec, self._target)
            due[kind] = time.monotonic() + spec.period
            threshold = thresholds[kind]
            if not threshold.observe(ok):
                continue
            if kind == "readinessProbe":
                self.ready = threshold.result
                log.info("%s: readiness %s %s", self._where, "passed" if ok else "failed", message)
                self._on_change()
            elif not threshold.result:
                self._fail(f"Liveness probe failed: {message}")
                return

    def _fail(self, message: str) -> None:
        log.warning("%s: %s; the container will be killed", self._where, message)
        self.ready = False
        self.failed = message
        self._on_change()


def named_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """A container's named ports, for probes that name their port instead of numbering it."""
    return {
        port["name"]: int(port["containerPort"]) for port in container.get("ports") or [] if port.get("name")
    }


def start_prober(
    container: Mapping[str, Any], target: Target, pod: str, on_change: Callable[[], None]
) -> ContainerProber | None:
    """A started prober for the container's probes, or None when it declares none."""
    specs = container_probes(container)
    if not specs:
        return None
    prober = ContainerProber(f"{pod}/{container['name']}", specs, target, on_change)
    prober.start()
    return prober
