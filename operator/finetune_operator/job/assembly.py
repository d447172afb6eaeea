"""From what one pass's rules decided to the `Decision`: the status document and the Events.

reconcile.py says *what happened* (conditions wanted, attempt and restart counters, actions); this
module turns that into the one status the controller writes, the same way on every pass: default
conditions filled in, conditions merged (a transition only when a status changes), phase and
headline message derived from them, progress/checkpoint/output merged from the scrape and the
trainer's completion summary, and one Event per event-worthy transition plus the rules' own. Kept
apart so the rules read as rules, and so the invalid-spec path shares the status conventions.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from finetune_api.contract import SUMMARY_OUTPUT
from finetune_operator import conditions as cond
from finetune_operator import reasons
from finetune_operator.job.jobview import JobView
from finetune_operator.job.plan import Action, Decision, Event, Observed
from finetune_operator.job.progress.status import (
    checkpoint_event,
    completion_summary,
    merged_checkpoint,
    merged_progress,
)
from finetune_operator.job.status import event_worthy, phase_of, rfc3339

DEFAULTED_CONDITIONS = (
    cond.CREATED,
    cond.RUNNING,
    cond.RESTARTING,
    cond.SUSPENDED,
    cond.SUCCEEDED,
    cond.FAILED,
)
"""Conditions present (False) from the first pass on, so `kubectl describe` shows them all."""

HEADLINE_ORDER = (cond.FAILED, cond.SUCCEEDED, cond.SUSPENDED, cond.RESTARTING, cond.STALLED, cond.RUNNING)
"""status.message is the message of the first True condition in this order (else Running's)."""


@dataclasses.dataclass
class RulesResult:
    """What the rules of one pass decided (reconcile._Pass fills it in)."""

    wanted: dict[str, cond.Desired]
    attempt: int
    restarts: dict[str, int]
    start_time: str | None
    completion_time: str | None
    workers: list[dict[str, Any]] | None
    """None: keep what status has."""
    actions: list[Action]
    events: list[Event]
    requeues: list[float]
    restart_kind: str | None
    completion: str | None


def assemble_decision(
    job: JobView, observed: Observed, now: datetime.datetime, result: RulesResult
) -> Decision:
    """The Decision of a pass: the new status, the actions, the Events and when to look again."""
    current = list(job.status.get("conditions") or [])
    wanted = dict(result.wanted)
    for kind in DEFAULTED_CONDITIONS:
        if kind not in wanted and cond.get(current, kind) is None:
            wanted[kind] = cond.Desired(
                kind, "False", reasons.INITIALIZING if kind == cond.CREATED else reasons.NOT_STARTED
            )
    merged, transitions = cond.merge_conditions(current, wanted.values(), rfc3339(now), job.generation)
    status = dict(job.status)
    status.update(
        {
            "phase": phase_of(merged),
            "conditions": merged,
            "observedGeneration": job.generation,
            "attempt": result.attempt,
            "restarts": dict(result.restarts),
            "message": headline(merged),
        }
    )
    if result.start_time:
        status["startTime"] = result.start_time
    if result.completion_time:
        status["completionTime"] = result.completion_time
    if result.workers is not None:
        status["workers"] = result.workers
    progress_events = progress_into(status, merged, job, observed, result.attempt)
    told = [
        Event(
            "Warning" if transition.warning else "Normal",
            transition.reason,
            transition.message or transition.reason,
        )
        for transition in sorted(transitions, key=lambda t: t.new_status != "True")
        if event_worthy(transition)
    ]
    events = one_per_reason([*result.events, *told], progress_events)
    return Decision(
        status=status,
        actions=result.actions,
        events=events,
        requeue_after=min(result.requeues) if result.requeues else None,
        restart_kind=result.restart_kind,
        completion=result.completion,
    )


def one_per_reason(events: list[Event], progress_events: list[Event]) -> list[Event]:
    """One Event per (type, reason) in a pass: the rule's own Event first, then the conditions
    that became True, then the rest. A pass that finishes a job turns Succeeded True and Running
    False with the same reason, and the first attempt's Created=True repeats its AttemptCreated
    Event: each was a second POST telling the same thing (issue 16)."""
    kept: dict[tuple[str, str], Event] = {}
    for event in events:
        kept.setdefault((event.type, event.reason), event)
    return [*kept.values(), *progress_events]


def progress_into(
    status: dict[str, Any],
    conditions: list[dict[str, Any]],
    job: JobView,
    observed: Observed,
    attempt: int,
) -> list[Event]:
    """Fill status.progress, status.checkpoint and (on success) status.output; checkpoint events."""
    succeeded = cond.is_true(conditions, cond.SUCCEEDED)
    summary = completion_summary(observed.pods.get(attempt, ())) if succeeded else None
    progress = merged_progress(job.status.get("progress"), observed.progress, summary, succeeded)
    if progress:
        status["progress"] = progress
    previous_checkpoint = job.status.get("checkpoint")
    checkpoint = merged_checkpoint(previous_checkpoint, observed.checkpoint)
    if checkpoint:
        status["checkpoint"] = checkpoint
    if succeeded and not status.get("output"):
        output = (summary or {}).get(SUMMARY_OUTPUT) or job.output_uri
        status["output"] = {"uri": output}
    message = checkpoint_event(previous_checkpoint, checkpoint, observed.checkpoint_event_due)
    return [Event("Normal", reasons.CHECKPOINT_COMMITTED, message)] if message else []


def headline(conditions: list[dict[str, Any]]) -> str:
    """status.message: the most telling True condition's message."""
    for kind in HEADLINE_ORDER:
        condition = cond.get(conditions, kind)
        if condition and condition.get("status") == "True" and condition.get("message"):
            return condition["message"]
    running = cond.get(conditions, cond.RUNNING) or {}
    return running.get("message") or ""


def invalid_spec_status(
    status: dict[str, Any], generation: int, message: str, now: datetime.datetime
) -> tuple[dict[str, Any], list[Event]]:
    """The status of a FineTuneJob whose spec does not parse: Failed with the validation message."""
    current = list(status.get("conditions") or [])
    if cond.is_true(current, cond.SUCCEEDED) or cond.is_true(current, cond.FAILED):
        return dict(status), []
    merged, transitions = cond.merge_conditions(
        current,
        [
            cond.Desired(cond.FAILED, "True", reasons.INVALID_SPEC, message),
            cond.Desired(cond.RUNNING, "False", reasons.INVALID_SPEC, message),
        ],
        rfc3339(now),
        generation,
    )
    new = dict(status)
    new.update(
        {
            "phase": phase_of(merged),
            "conditions": merged,
            "observedGeneration": generation,
            "message": message,
            "completionTime": status.get("completionTime") or rfc3339(now),
        }
    )
    events = [Event("Warning", reasons.INVALID_SPEC, message)] if transitions else []
    return new, events
