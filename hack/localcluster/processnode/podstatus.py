"""Pod status from what the process node knows about its containers; pure.

Why separate: phase, conditions and container states follow kubelet rules that the Job
controller, the operator and users read (`kubectl get pods`, `describe`). Keeping them as
functions over plain records makes them testable table-driven and keeps the pod worker thin.

Rules kept from the kubelet (simplified where noted):
- phase: Pending until every init container succeeded and every container started; Succeeded
  when every container exited 0 and none will restart; Failed when a container failed and will
  not restart (restartPolicy Never, or the pod is being deleted); otherwise Running.
- reasons: ``Completed`` for exit 0, ``Error`` otherwise, ``StartError`` (exit 128) when the
  command cannot be executed; signals appear as 128+signal.
- conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready, PodScheduled keep
  their lastTransitionTime while their status does not change. A running container is ready and
  started unless its probes (``probes``) say otherwise: with a readiness probe it is ready only
  once the probe passed, with a startup probe it is started only once that passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WAITING = "waiting"
RUNNING = "running"
TERMINATED = "terminated"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerRecord:
    """One container of a pod as the process node runs it (persisted in the pod state)."""

    name: str
    image: str = ""
    init: bool = False
    state: str = WAITING
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    restart_count: int = 0
    container_id: str = ""
    last_terminated: dict[str, Any] | None = field(default=None)

    @property
    def succeeded(self) -> bool:
        return self.state == TERMINATED and self.exit_code == 0

    @property
    def failed(self) -> bool:
        return self.state == TERMINATED and self.exit_code != 0


def will_restart(record: ContainerRecord, restart_policy: str) -> bool:
    """Whether a terminated container is started again under ``restart_policy``."""
    if record.state != TERMINATED:
        return False
    return restart_policy == "Always" or (restart_policy == "OnFailure" and record.failed)


def terminated_state(record: ContainerRecord) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": record.exit_code if record.exit_code is not None else 0,
        "reason": record.reason,
        "startedAt": record.started_at,
        "finishedAt": record.finished_at,
        "containerID": record.container_id or None,
    }
    if record.message:
        state["message"] = record.message
    if record.signal:
        state["signal"] = record.signal
    return {key: value for key, value in state.items() if value is not None}


@dataclass(frozen=True)
class ProbeView:
    """What the probes of a running container say (absent: no probes, running is ready)."""

    ready: bool
    started: bool


def container_status(record: ContainerRecord, probe: ProbeView | None = None) -> dict[str, Any]:
    """A ``containerStatuses[]`` entry."""
    if record.state == RUNNING:
        state: dict[str, Any] = {"running": {"startedAt": record.started_at}}
    elif record.state == TERMINATED:
        state = {"terminated": terminated_state(record)}
    else:
        waiting: dict[str, Any] = {"reason": record.reason}
        if record.message:
            waiting["message"] = record.message
        state = {"waiting": waiting}
    status: dict[str, Any] = {
        "name": record.name,
        "image": record.image or "processnode/none",
        "imageID": "",
        "state": state,
        "lastState": {"terminated": record.last_terminated} if record.last_terminated else {},
        "ready": _ready(record, probe),
        "restartCount": record.restart_count,
        "started": record.state == RUNNING and (probe is None or probe.started),
    }
    if record.container_id:
        status["containerID"] = record.container_id
    return status


def _ready(record: ContainerRecord, probe: ProbeView | None) -> bool:
    return record.state == RUNNING and (probe is None or probe.ready)


def pod_phase(
    init: list[ContainerRecord], main: list[ContainerRecord], restart_policy: str, deleting: bool
) -> str:
    """The pod phase; ``deleting`` means nothing restarts any more."""
    policy = "Never" if deleting else restart_policy
    for record in init:
        if record.failed and not will_restart(record, policy):
            return "Failed"
        if not record.succeeded:
            return "Pending"
    if any(record.state == WAITING and record.restart_count == 0 for record in main):
        return "Pending"
    if any(record.state == RUNNING or will_restart(record, policy) for record in main):
        return "Running"
    if main and all(record.state == TERMINATED for record in main):
        return "Succeeded" if all(record.succeeded for record in main) else "Failed"
    return "Running"


def _condition_values(
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    phase: str,
    probes: Mapping[str, ProbeView] | None = None,
) -> dict[str, tuple[str, str, str]]:
    """type -> (status, reason, message) before transition times are merged in."""
    terminal = phase in ("Succeeded", "Failed")
    values: dict[str, tuple[str, str, str]] = {
        "PodReadyToStartContainers": ("False" if terminal else "True", "", ""),
        "PodScheduled": ("True", "", ""),
    }
    pending_init = [record.name for record in init if not record.succeeded]
    values["Initialized"] = (
        ("True", "", "")
        if not pending_init
        else (
            "False",
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        )
    )
    unready = [record.name for record in main if not _ready(record, (probes or {}).get(record.name))]
    if not unready and not terminal:
        ready = ("True", "", "")
    elif phase == "Succeeded":
        ready = ("False", "PodCompleted", "")
    else:
        ready = ("False", "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    values["ContainersReady"] = ready
    values["Ready"] = ready
    return values


def merge_conditions(
    previous: list[Mapping[str, Any]], values: Mapping[str, tuple[str, str, str]], now: str
) -> list[dict[str, Any]]:
    """Conditions in a stable order, keeping lastTransitionTime where the status did not change."""
    old = {condition["type"]: condition for condition in previous}
    merged = []
    for kind, (status, reason, message) in values.items():
        before = old.get(kind)
        changed = before is None or before.get("status") != status
        condition: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),
        }
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        merged.append(condition)
    return merged


@dataclass(frozen=True)
class PodFactsForStatus:
    pod_ip: str
    host_ip: str
    start_time: str


def pod_status(
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    phase: str,
    facts: PodFactsForStatus,
    previous_conditions: list[Mapping[str, Any]],
    now: str,
    reason: str = "",
    message: str = "",
    probes: Mapping[str, ProbeView] | None = None,
) -> dict[str, Any]:
    """The whole ``status`` the process node owns (a strategic-merge patch body); ``probes``:
    container name -> what its probes say, for the containers that have probes."""
    probes = probes or {}
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": merge_conditions(
            previous_conditions, _condition_values(init, main, phase, probes), now
        ),
        "hostIP": facts.host_ip,
        "hostIPs": [{"ip": facts.host_ip}],
        "startTime": facts.start_time,
        "containerStatuses": [container_status(record, probes.get(record.name)) for record in main],
    }
    if facts.pod_ip:
        status["podIP"] = facts.pod_ip
        status["podIPs"] = [{"ip": facts.pod_ip}]
    if init:
        status["initContainerStatuses"] = [container_status(record) for record in init]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return status
