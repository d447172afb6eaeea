"""One reconcile pass of a FineTuneSchedule as a pure function: (schedule, its jobs, now) -> Plan.

The order of decisions is the CronJob controller's (syncCronJob): prune finished jobs beyond the
history limits, stop if suspended, find the unmet scheduled time, skip it when too late or (Forbid)
while a run is active, delete the active runs (Replace), create the new run. The handler performs the
Plan's deletions and creation, then writes `status` once, then emits `events` (docs/architecture.md
"Status conditions").
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from finetune_api import SpecError
from finetune_api.schedule import FineTuneScheduleSpec, parse_schedule_spec
from finetune_api.schedule_cron import parse_cron
from finetune_operator import reasons
from finetune_operator.schedule.child_job import TemplateError, build_child, child_name
from finetune_operator.schedule.children import (
    Child,
    active_children,
    children_of,
    format_time,
    history_to_delete,
    last_successful_time,
    latest_scheduled_time,
    parse_time,
)
from finetune_operator.schedule.timing import MANY_MISSED, DueRun, due_run, earliest_unmet_bound

READY = "Ready"


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit on the schedule once status is written.

    key: identifies the occurrence, so the caller can emit it once although every pass sees it.
    """

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    key: str


@dataclass
class Plan:
    """What one pass does. `status` is the schedule's whole new status; `active` lists the active
    children that remain after `delete` (the created child is added by the caller, with its UID)."""

    create: dict[str, Any] | None = None
    delete: list[Child] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def _ready(status: str, reason: str, message: str, generation: int, now: datetime, old: list[dict]) -> dict:
    previous = next((c for c in old if c.get("type") == READY), None)
    changed = previous is None or previous.get("status") != status
    return {
        "type": READY,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now) if changed else previous.get("lastTransitionTime"),
        "observedGeneration": generation,
    }


def _base_status(
    old: dict[str, Any], children: list[Child], active: list[Child], generation: int
) -> dict[str, Any]:
    last_success = last_successful_time(children, parse_time(old.get("lastSuccessfulTime")))
    return {
        "lastScheduleTime": old.get("lastScheduleTime"),
        "lastSuccessfulTime": format_time(last_success) if last_success else None,
        "nextScheduleTime": None,
        "active": [c.reference() for c in active],
        "activeCount": len(active),
        "observedGeneration": generation,
    }


def _decide_run(
    schedule: dict[str, Any], spec: FineTuneScheduleSpec, children: list[Child], due: DueRun, plan: Plan
) -> str | None:
    """Fill `plan` for a due scheduled time (the tail of syncCronJob); return why the template is
    unusable, if it is."""
    assert due.scheduled_time is not None
    when = format_time(due.scheduled_time)
    active = [c for c in children if c.state == "active" and c not in plan.delete]
    if due.too_late:
        plan.events.append(
            Event(
                "Warning",
                reasons.MISSED_SCHEDULE,
                f"missed the run scheduled for {when}: more than startingDeadlineSeconds="
                f"{spec.starting_deadline_seconds} late; waiting for the next scheduled time",
                f"missed/{when}",
            )
        )
        return None
    name = child_name(schedule["metadata"]["name"], due.scheduled_time)
    if any(c.name == name for c in children):
        plan.status["lastScheduleTime"] = when  # created by an earlier pass whose status write was lost
        return None
    if spec.concurrency_policy == "Forbid" and active:
        plan.events.append(
            Event(
                "Normal",
                reasons.JOB_ALREADY_ACTIVE,
                f"not starting the run scheduled for {when}: {active[-1].name} is still active and "
                "concurrencyPolicy is Forbid",
                f"forbid/{when}",
            )
        )
        return None
    zone = ZoneInfo(spec.time_zone)
    try:
        plan.create = build_child(schedule, due.scheduled_time, zone)
    except TemplateError as error:
        plan.events.append(Event("Warning", reasons.INVALID_TEMPLATE, str(error), f"template/{when}"))
        return str(error)
    if spec.concurrency_policy == "Replace":
        for child in active:
            plan.delete.append(child)
            plan.events.append(
                Event(
                    "Normal",
                    reasons.SUCCESSFUL_DELETE,
                    f"deleted {child.name}: the run scheduled for {when} replaces it (concurrencyPolicy "
                    "Replace)",
                    f"replace/{child.name}",
                )
            )
    if due.missed > 1:
        count = f"more than {MANY_MISSED}" if due.missed > MANY_MISSED else str(due.missed - 1)
        plan.events.append(
            Event(
                "Warning",
                reasons.MISSED_SCHEDULES,
                f"{count} earlier scheduled runs were missed (operator down or schedule suspended); "
                f"starting only the most recent, scheduled for {when}",
                f"catchup/{when}",
            )
        )
    plan.events.append(
        Event(
            "Normal",
            reasons.SUCCESSFUL_CREATE,
            f"created FineTuneJob {plan.create['metadata']['name']}",
            f"create/{when}",
        )
    )
    plan.status["lastScheduleTime"] = when
    return None


def plan_pass(schedule: dict[str, Any], child_bodies: list[dict[str, Any]], now: datetime) -> Plan:
    """Decide one pass for `schedule` (the object as stored) given the FineTuneJobs labelled with its
    name and the current time."""
    metadata = schedule["metadata"]
    generation = int(metadata.get("generation") or 0)
    old_status = schedule.get("status") or {}
    old_conditions = old_status.get("conditions") or []
    children = children_of(child_bodies, metadata["name"], metadata["uid"])
    plan = Plan(delete=history_to_delete(children, *_history_limits(schedule)))
    active = [c for c in active_children(children) if c not in plan.delete]
    plan.status = _base_status(old_status, children, active, generation)

    try:
        spec = parse_schedule_spec(schedule.get("spec") or {})
    except SpecError as error:
        plan.status["conditions"] = [
            _ready(
                "False",
                reasons.INVALID_SPEC,
                f"{error}; fix it and apply again",
                generation,
                now,
                old_conditions,
            )
        ]
        plan.events.append(Event("Warning", reasons.INVALID_SPEC, str(error), f"invalid/{generation}"))
        return plan
    if spec.suspend:
        plan.status["conditions"] = [
            _ready(
                "False",
                reasons.SUSPENDED,
                "spec.suspend is true: no new runs",
                generation,
                now,
                old_conditions,
            )
        ]
        return plan

    expression = parse_cron(spec.schedule)
    zone = ZoneInfo(spec.time_zone)
    created = parse_time(metadata.get("creationTimestamp")) or now
    earliest = earliest_unmet_bound(
        created, parse_time(old_status.get("lastScheduleTime")), latest_scheduled_time(children)
    )
    due = due_run(
        expression, zone, earliest=earliest, now=now, starting_deadline_seconds=spec.starting_deadline_seconds
    )
    template_error = None
    if due.scheduled_time is not None:
        template_error = _decide_run(schedule, spec, children, due, plan)
    plan.status["active"] = [c.reference() for c in active if c not in plan.delete]
    plan.status["activeCount"] = len(plan.status["active"])
    plan.status["nextScheduleTime"] = format_time(due.next_time) if due.next_time else None
    next_text = f"next run at {plan.status['nextScheduleTime']}" if due.next_time else "no future run"
    if template_error is not None:
        ready = _ready("False", reasons.INVALID_TEMPLATE, template_error, generation, now, old_conditions)
    else:
        ready = _ready("True", reasons.SCHEDULING, next_text, generation, now, old_conditions)
    plan.status["conditions"] = [ready]
    return plan


def _history_limits(schedule: dict[str, Any]) -> tuple[int, int]:
    """The history limits as stored (the CRD defaults them); read even when the spec is otherwise invalid."""
    spec = schedule.get("spec") or {}
    return int(spec.get("successfulJobsHistoryLimit", 3)), int(spec.get("failedJobsHistoryLimit", 1))
