"""One reconcile pass of a FineTuneSweep as a pure function: (sweep, its trials, now) -> Plan.

Order: fold each trial FineTuneJob's status into the trial's record (running, succeeded, failed,
the newest evaluation), ask the pruner about every trial that has a new evaluation, decide whether
the sweep is over (maxFailedTrials, goal, all trials done), then record the suggestions of the
trials to start. The controller writes the returned status *first* and only then creates the new
trials' FineTuneJobs and stops the pruned ones, so a suggestion is always in status before its job
exists, and the job's fixed name makes the creation idempotent.

A trial preempted or restarted by the FineTuneJob controller stays Running here (its job resumes
from its checkpoint); only a job that ends Failed counts against maxFailedTrials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from finetune_api import SpecError, parse_spec
from finetune_api.sweep import DEFAULT_MAX_TRIALS, FineTuneSweepSpec, parse_sweep_spec
from finetune_operator import reasons
from finetune_operator.sweep.observe import Reading, TrialView, view_trial
from finetune_operator.sweep.space import SpaceError, grid_size, grid_space
from finetune_operator.sweep.study import SamplerUnavailable, should_prune, suggest
from finetune_operator.sweep.trial_job import TrialSpecError, trial_manifest, trial_name, trial_spec

ACTIVE = ("Pending", "Running")
FINAL = ("Succeeded", "Pruned", "Failed", "Stopped")
CONDITION_TYPES = ("Running", "Suspended", "Succeeded", "Failed")
MAX_EVALUATIONS_KEPT = 200
"""Evaluations kept per trial record (the oldest are dropped), bounding the status size."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the sweep after the status write; `key` makes it post once."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    key: str


@dataclass(frozen=True)
class TrialRef:
    name: str
    uid: str


@dataclass
class Plan:
    status: dict[str, Any] = field(default_factory=dict)
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[TrialRef] = field(default_factory=list)
    suspend: dict[str, bool] = field(default_factory=dict)
    """Trial name -> the runPolicy.suspend it must get."""
    events: list[Event] = field(default_factory=list)


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned(jobs: list[dict[str, Any]], uid: str) -> dict[str, dict[str, Any]]:
    owned = {}
    for job in jobs:
        refs = job["metadata"].get("ownerReferences") or []
        if any(ref.get("uid") == uid and ref.get("controller") for ref in refs):
            owned[job["metadata"]["name"]] = job
    return owned


def _job_spec(job: dict[str, Any], fallback: FineTuneSweepSpec) -> Any:
    try:
        return parse_spec(job.get("spec") or {})
    except SpecError:
        return fallback.template


def _record_reading(record: dict[str, Any], reading: Reading) -> bool:
    """Put `reading` into the record's evaluations; True when it is new or changed."""
    evaluations = [dict(e) for e in record.get("evaluations") or []]
    entry = {"evaluation": reading.evaluation, "step": reading.step, "value": reading.value}
    for position, existing in enumerate(evaluations):
        if existing.get("evaluation") == reading.evaluation:
            if existing.get("value") == reading.value:
                return False
            evaluations[position] = entry
            break
    else:
        evaluations.append(entry)
        evaluations.sort(key=lambda e: e["evaluation"])
    record["evaluations"] = evaluations[-MAX_EVALUATIONS_KEPT:]
    record["step"] = reading.step
    return True


def _short(value: float) -> str:
    return f"{value:.4g}"


class _Pass:
    """The working state of one pass (a helper to keep plan_pass readable)."""

    def __init__(self, sweep: dict[str, Any], spec: FineTuneSweepSpec, plan: Plan):
        self.sweep = sweep
        self.spec = spec
        self.name = sweep["metadata"]["name"]
        self.uid = sweep["metadata"]["uid"]
        self.plan = plan
        self.history: list[dict[str, Any]] = [
            dict(r) for r in (sweep.get("status") or {}).get("history") or []
        ]

    def count(self, *states: str) -> int:
        return sum(1 for r in self.history if r.get("state") in states)

    # --- trials ----------------------------------------------------------------------------------
    def fold(self, record: dict[str, Any], job: dict[str, Any] | None, refused: str | None) -> bool:
        """Update an active record from its job; True when it has a new evaluation to judge."""
        if job is None:
            if refused is not None:
                record.update(state="Failed", message=refused)
                self.event(
                    "Warning",
                    reasons.TRIAL_FAILED,
                    f"{record['name']}: {refused}",
                    f"failed/{record['name']}",
                )
            elif record["state"] == "Pending":
                # Recorded by an earlier pass whose creation did not happen (operator restarted).
                try:
                    spec = trial_spec(self.template(), record["parameters"], record["name"])
                except TrialSpecError as error:
                    record.update(state="Failed", message=str(error))
                    return False
                self.plan.create.append(trial_manifest(self.sweep, int(record["index"]), spec))
            else:
                message = "the trial's FineTuneJob was deleted"
                record.update(state="Failed", message=message)
                self.event(
                    "Warning",
                    reasons.TRIAL_FAILED,
                    f"{record['name']}: {message}",
                    f"failed/{record['name']}",
                )
            return False
        view: TrialView = view_trial(job, _job_spec(job, self.spec), self.spec.metric)
        record["state"] = "Running"
        record["output"] = view.output
        changed = view.reading is not None and _record_reading(record, view.reading)
        if view.phase == "succeeded":
            if view.value is None:
                message = f"the trial succeeded but reported no {self.spec.metric}"
                record.update(state="Failed", message=message)
                self.event(
                    "Warning",
                    reasons.TRIAL_FAILED,
                    f"{record['name']}: {message}",
                    f"failed/{record['name']}",
                )
            else:
                record.update(state="Succeeded", value=view.value)
                self.event(
                    "Normal",
                    reasons.TRIAL_SUCCEEDED,
                    f"{record['name']} finished: {self.spec.metric} {_short(view.value)}",
                    f"succeeded/{record['name']}",
                )
            return False
        if view.phase == "failed":
            record.update(state="Failed", message=view.message)
            self.event(
                "Warning",
                reasons.TRIAL_FAILED,
                f"{record['name']}: {view.message}",
                f"failed/{record['name']}",
            )
            return False
        return changed

    def template(self) -> dict[str, Any]:
        return dict(self.sweep["spec"]["template"])

    def judge(self, record: dict[str, Any]) -> None:
        """Ask the pruner about a running trial with a new evaluation; prune it if told to."""
        index = int(record["index"])
        prune, record["samplerState"] = should_prune(self.spec, self.history, self.uid, index)
        if not prune:
            return
        last = (record.get("evaluations") or [{}])[-1]
        message = (
            f"pruned by {self.spec.early_stopping.name} at evaluation {last.get('evaluation')} "
            f"(step {last.get('step')}) with {self.spec.metric} {_short(float(last.get('value')))}"
        )
        record.update(state="Pruned", value=last.get("value"), step=last.get("step"), message=message)
        self.event("Normal", reasons.TRIAL_PRUNED, f"{record['name']} {message}", f"pruned/{record['name']}")

    def stop_active(self, why: str) -> None:
        for record in self.history:
            if record.get("state") in ACTIVE:
                record.update(state="Stopped", message=why)

    def start_trials(self, target: int) -> None:
        """Record the suggestions of the trials to start now (created after the status write)."""
        tries = 0
        while (
            self.count(*ACTIVE) < self.spec.parallel_trials
            and len(self.history) < target
            and not self.failed_enough()
            and tries < self.spec.parallel_trials + 5
        ):
            tries += 1
            index = len(self.history)
            name = trial_name(self.name, index)
            values, sampler_state = suggest(self.spec, self.history, self.uid, index)
            record: dict[str, Any] = {
                "index": index,
                "name": name,
                "state": "Pending",
                "parameters": values,
                "samplerState": sampler_state,
            }
            try:
                spec = trial_spec(self.template(), values, name)
            except TrialSpecError as error:
                record.update(state="Failed", message=str(error))
                self.event("Warning", reasons.TRIAL_FAILED, f"{name}: {error}", f"failed/{name}")
            else:
                record["output"] = spec["output"]["uri"]
                self.plan.create.append(trial_manifest(self.sweep, index, spec))
                shown = ", ".join(f"{k}={v}" for k, v in values.items())
                self.event("Normal", reasons.TRIAL_CREATED, f"created {name}: {shown}", f"created/{name}")
            self.history.append(record)

    def failed_enough(self) -> bool:
        limit = self.spec.max_failed_trials
        return limit is not None and self.count("Failed") >= limit

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str, key: str) -> None:
        self.plan.events.append(Event(kind, reason, message, key))

    # --- results ---------------------------------------------------------------------------------
    def best(self) -> dict[str, Any] | None:
        done = [r for r in self.history if r.get("state") == "Succeeded" and r.get("value") is not None]
        if not done:
            return None
        sign = 1.0 if self.spec.direction == "maximize" else -1.0
        best = max(done, key=lambda r: (sign * float(r["value"]), -int(r["index"])))
        return {
            "name": best["name"],
            "index": best["index"],
            "value": best["value"],
            "parameters": best.get("parameters") or {},
            "output": best.get("output"),
        }

    def goal_reached(self, best: dict[str, Any] | None) -> bool:
        goal = self.spec.objective.goal
        if goal is None or best is None:
            return False
        value = float(best["value"])
        return value >= goal if self.spec.direction == "maximize" else value <= goal


def target_trials(spec: FineTuneSweepSpec) -> int:
    """How many trials the sweep runs: maxTrials, the grid's size for grid (whichever is smaller)."""
    if spec.algorithm.name == "grid":
        size = grid_size(grid_space(spec.parameters))
        return min(size, spec.max_trials) if spec.max_trials else size
    return spec.max_trials or DEFAULT_MAX_TRIALS


def _condition(kind: str, status: bool, reason: str, message: str, old: list[dict], now: datetime, gen: int):
    previous = next((c for c in old if c.get("type") == kind), None)
    text = "True" if status else "False"
    changed = previous is None or previous.get("status") != text
    condition = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now) if changed else previous.get("lastTransitionTime"),
        "observedGeneration": gen,
    }
    return {k: v for k, v in condition.items() if v != ""}


def _conditions(
    phase: str, reason: str, message: str, old: list[dict], now: datetime, gen: int
) -> list[dict]:
    return [
        _condition(
            kind,
            kind == phase,
            reason if kind == phase else "",
            message if kind == phase else "",
            old,
            now,
            gen,
        )
        for kind in CONDITION_TYPES
    ]


def _counts(history: list[dict[str, Any]]) -> dict[str, int]:
    def count(*states: str) -> int:
        return sum(1 for r in history if r.get("state") in states)

    return {
        "total": len(history),
        "running": count(*ACTIVE),
        "succeeded": count("Succeeded"),
        "pruned": count("Pruned"),
        "failed": count("Failed", "Stopped"),
    }


def _summary(counts: dict[str, int], target: int | None) -> str:
    text = f"{counts['succeeded']}/{target if target else counts['total']}"
    extras = [f"{counts[k]} {k}" for k in ("running", "pruned", "failed") if counts[k]]
    return text + (f" ({', '.join(extras)})" if extras else "")


def plan_pass(
    sweep: dict[str, Any],
    jobs: list[dict[str, Any]],
    now: datetime,
    refused: Mapping[str, str] | None = None,
) -> Plan:
    """Decide one pass for `sweep` (as stored) given the FineTuneJobs labelled with its name.

    `refused` holds the trials whose creation the API server refused since the last pass (name ->
    message). Everything else the decision needs, Optuna's state included, is in the sweep's status.
    """
    metadata = sweep["metadata"]
    generation = int(metadata.get("generation") or 0)
    old = sweep.get("status") or {}
    old_conditions = old.get("conditions") or []
    plan = Plan()
    try:
        spec = parse_sweep_spec(sweep.get("spec") or {})
        target = target_trials(spec)
    except (SpecError, SpaceError) as error:
        plan.status = {
            **old,
            "phase": "Failed",
            "observedGeneration": generation,
            "conditions": _conditions(
                "Failed",
                reasons.INVALID_SPEC,
                f"{error}; fix it and apply again",
                old_conditions,
                now,
                generation,
            ),
        }
        plan.events.append(Event("Warning", reasons.INVALID_SPEC, str(error), f"invalid/{generation}"))
        return plan

    work = _Pass(sweep, spec, plan)
    owned = _owned(jobs, work.uid)
    finished = old.get("phase") in ("Succeeded", "Failed") and old.get("completionTime")

    if not finished:
        to_judge = []
        for record in work.history:
            if record.get("state") in ACTIVE:
                job = owned.get(record["name"])
                if job is not None and job["metadata"].get("deletionTimestamp"):
                    job = None if record["state"] == "Pending" else job
                if work.fold(record, job, (refused or {}).get(record["name"])):
                    to_judge.append(record)
        if spec.early_stopping.name != "none":
            try:
                for record in to_judge:
                    work.judge(record)
            except SamplerUnavailable:
                pass

    # Jobs of trials that no longer run (pruned, stopped, or the sweep is over) are deleted.
    phase, reason, message = "Running", reasons.TRIALS_RUNNING, ""
    best = work.best()
    if finished:
        phase = str(old.get("phase"))
        reason = next((c.get("reason") for c in old_conditions if c.get("type") == phase), "") or phase
        message = next((c.get("message") for c in old_conditions if c.get("type") == phase), "") or ""
    elif work.failed_enough():
        work.stop_active("stopped: the sweep failed")
        phase, reason = "Failed", reasons.TOO_MANY_FAILED_TRIALS
        message = f"{work.count('Failed')} trials failed (maxFailedTrials {spec.max_failed_trials})"
    elif spec.suspend:
        phase, reason, message = (
            "Suspended",
            reasons.SWEEP_SUSPENDED,
            "spec.suspend is true: trials are suspended",
        )
    else:
        stop_new = work.goal_reached(best)
        if not stop_new:
            try:
                work.start_trials(target)
            except SamplerUnavailable as error:
                phase, reason, message = "Failed", reasons.SAMPLER_UNAVAILABLE, str(error)
                work.stop_active(f"stopped: {error}")
        if phase == "Running" and work.failed_enough():
            work.stop_active("stopped: the sweep failed")
            phase, reason = "Failed", reasons.TOO_MANY_FAILED_TRIALS
            message = f"{work.count('Failed')} trials failed (maxFailedTrials {spec.max_failed_trials})"
        elif phase == "Running" and work.count(*ACTIVE) == 0 and (stop_new or len(work.history) >= target):
            if best is not None:
                phase, reason = "Succeeded", reasons.GOAL_REACHED if stop_new else reasons.ALL_TRIALS_FINISHED
                message = f"best trial {best['name']}: {spec.metric} {_short(float(best['value']))}"
            else:
                phase, reason, message = "Failed", reasons.NO_TRIAL_SUCCEEDED, "no trial succeeded"
        elif phase == "Running":
            message = f"{work.count(*ACTIVE)} trials running, {len(work.history)}/{target} started"

    for record in work.history:
        job = owned.get(record["name"])
        if job is None or job["metadata"].get("deletionTimestamp"):
            continue
        if record.get("state") in ("Pruned", "Stopped"):
            plan.delete.append(TrialRef(record["name"], job["metadata"]["uid"]))
        elif record.get("state") in ACTIVE:
            wanted = spec.suspend or bool(spec.template.run_policy.suspend)
            current = bool(((job.get("spec") or {}).get("runPolicy") or {}).get("suspend"))
            if current != wanted:
                plan.suspend[record["name"]] = wanted

    counts = _counts(work.history)
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": generation,
        "conditions": _conditions(phase, reason, message, old_conditions, now, generation),
        "trials": counts,
        "trialsSummary": _summary(counts, target),
        "bestTrial": best,
        "history": work.history,
        "startTime": old.get("startTime") or (format_time(now) if work.history else None),
        "completionTime": old.get("completionTime"),
    }
    if phase in ("Succeeded", "Failed") and not status["completionTime"]:
        status["completionTime"] = format_time(now)
        kind: Literal["Normal", "Warning"] = "Normal" if phase == "Succeeded" else "Warning"
        plan.events.append(Event(kind, f"Sweep{phase}", message or phase, f"sweep/{phase}"))
    plan.status = {k: v for k, v in status.items() if v is not None}
    return plan
