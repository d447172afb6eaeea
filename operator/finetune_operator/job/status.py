"""Pieces of the FineTuneJob status that are pure functions of other status fields.

The conventions are docs/architecture.md, "Status conditions".

`reconcile.decide` decides what happened; the helpers here turn that into the status shape of
finetune_api.FineTuneJobStatus: phase for the printer column, restart counters, the Stalled rule,
timestamps in RFC 3339, and which condition transitions deserve an Event.
"""

from __future__ import annotations

import datetime
from typing import Any

from finetune_api.status import Phase
from finetune_operator import conditions as cond
from finetune_operator import reasons
from finetune_operator.timefmt import format_time
from finetune_operator.timefmt import parse_time as parse_time  # re-exported: the one parser

rfc3339 = format_time  # Kubernetes' time format (finetune_operator.timefmt)


def restarts_of(status: dict[str, Any]) -> dict[str, int]:
    """The restart counters, zero-filled."""
    restarts = status.get("restarts") or {}
    return {key: int(restarts.get(key) or 0) for key in ("total", "preemptions", "failures")}


def phase_of(conditions: list[dict[str, Any]]) -> str:
    """One word for `kubectl get`; decisions are made on conditions, never on this."""
    for kind, phase in (
        (cond.FAILED, Phase.FAILED),
        (cond.SUCCEEDED, Phase.SUCCEEDED),
        (cond.SUSPENDED, Phase.SUSPENDED),
        (cond.RESTARTING, Phase.RESTARTING),
        (cond.RUNNING, Phase.RUNNING),
    ):
        if cond.is_true(conditions, kind):
            return phase.value
    return Phase.PENDING.value


def stalled_condition(
    running: bool,
    step: int | None,
    step_changed_at: datetime.datetime | None,
    now: datetime.datetime,
    stall_after_seconds: float,
) -> cond.Desired | None:
    """Stalled=True when a running job's training step has not advanced for `stall_after_seconds`.

    None (leave the condition alone) when there is no progress data to judge by: progress comes
    from the trainer's metrics (issue 6) and may be missing.
    """
    if not running:
        return cond.Desired(cond.STALLED, "False", reasons.NOT_RUNNING, "the workers are not running")
    if step is None or step_changed_at is None:
        return None
    idle = (now - step_changed_at).total_seconds()
    if idle >= stall_after_seconds:
        return cond.Desired(
            cond.STALLED,
            "True",
            reasons.NO_PROGRESS,
            f"training step {step} has not advanced for {int(idle)}s "
            f"(threshold {int(stall_after_seconds)}s); check the workers' logs (kubectl logs) "
            "for a hang or a slow checkpoint upload",
        )
    return cond.Desired(cond.STALLED, "False", reasons.PROGRESSING, f"training step {step} is advancing")


def stall_check_due(
    step_changed_at: datetime.datetime | None, now: datetime.datetime, stall_after_seconds: float
) -> float | None:
    """Seconds until the Stalled rule could next flip, so the operator re-checks then."""
    if step_changed_at is None:
        return None
    return max(0.0, stall_after_seconds - (now - step_changed_at).total_seconds())


def event_worthy(transition: cond.Transition) -> bool:
    """Events for conditions becoming True or leaving True; a condition first appearing False is quiet."""
    return transition.new_status == "True" or transition.old_status == "True"
