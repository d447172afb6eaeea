"""The operator's decisions as one pure function: `decide(job, observed, now, settings) -> Decision`.

Level-triggered (docs/architecture.md "Level-triggered reconcile"): every pass looks at the
FineTuneJob and at what exists (the Service,
the attempt Jobs, their pods) and says what to create or delete and what the status is. Nothing is
remembered between passes except what is in the status and in the children, so an operator killed
at any point converges when it comes back. The rules, in the order they are applied:

1. A finished job (Succeeded or Failed) only waits for its TTL; a deadline failure also deletes the
   attempt that was still running.
2. activeDeadlineSeconds, counted from status.startTime (wall clock, suspension included), fails the
   job with reason DeadlineExceeded and deletes the running attempt.
3. runPolicy.suspend deletes the running attempt (pods get their grace period, the trainer commits a
   checkpoint on SIGTERM) and bumps status.attempt, so the unsuspended job runs a new attempt.
4. The current attempt (status.attempt, or the highest attempt Job found) is judged by
   failure_policy: success and permanent failure end the job; a retryable failure or a disruption
   bumps status.attempt and the restart counters **in the status write of this pass**, before the
   next attempt exists. That write is the accounting: once status.attempt is past an attempt, that
   attempt's outcome is never counted again.
5. An older attempt is kept until its backoff ends (its Job carries the failure time), then deleted
   with foreground propagation; the next attempt is created only when no Job and no pod of an older
   attempt is left, so two attempts never run at once.

The controller writes the status first and acts afterwards; every action is idempotent (fixed names,
"already exists" and "not found" are success). Turning the rules' result into the status document
and the Events (default conditions, phase, headline, progress) is assembly.py's part.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from finetune_api.contract import SUMMARY_OUTPUT
from finetune_operator import conditions as cond
from finetune_operator import naming, reasons
from finetune_operator.job.assembly import RulesResult, assemble_decision
from finetune_operator.job.backoff import restart_delay_seconds
from finetune_operator.job.builders import (
    build_job,
    build_service,
    build_spec_config_map,
    spec_config_map_name,
)
from finetune_operator.job.failure_policy import AttemptOutcome, Verdict, classify_attempt
from finetune_operator.job.jobview import JobView
from finetune_operator.job.plan import (
    Action,
    CreateConfigMap,
    CreateJob,
    CreateService,
    Decision,
    DeleteConfigMap,
    DeleteFineTuneJob,
    DeleteJob,
    Event,
    Observed,
)
from finetune_operator.job.pods import find_condition, trainer_termination, worker_summary
from finetune_operator.job.policy import job_refusal
from finetune_operator.job.progress.status import completion_summary, final_metric_text, merged_progress
from finetune_operator.job.status import parse_time, restarts_of, rfc3339, stall_check_due, stalled_condition
from finetune_operator.settings import Settings


def _deleting(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _job_finished(obj: dict[str, Any]) -> bool:
    return bool(find_condition(obj, "Complete") or find_condition(obj, "Failed"))


def failure_time(job_obj: dict[str, Any], pods: Sequence[dict[str, Any]]) -> datetime.datetime | None:
    """When an attempt failed: its Job's Failed/FailureTarget condition, else its last pod's end."""
    for kind in ("FailureTarget", "Failed"):
        condition = find_condition(job_obj, kind)
        if condition and condition.get("lastTransitionTime"):
            return parse_time(condition["lastTransitionTime"])
    ends = [parse_time((trainer_termination(pod) or {}).get("finishedAt")) for pod in pods]
    known = [end for end in ends if end is not None]
    return max(known) if known else None


class _Pass:
    """Accumulates one pass's decisions; `decide` is the only public entry."""

    def __init__(self, job: JobView, observed: Observed, now: datetime.datetime, settings: Settings):
        self.job = job
        self.observed = observed
        self.now = now
        self.settings = settings
        status = job.status
        self.conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        self.attempt = max(int(status.get("attempt") or 0), max(observed.jobs, default=0))
        self.restarts = restarts_of(status)
        self.start_time: str | None = status.get("startTime")
        self.completion_time: str | None = status.get("completionTime")
        self.workers: list[dict[str, Any]] | None = None  # None: keep what status has
        self.wanted: dict[str, cond.Desired] = {}
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.requeues: list[float] = []
        self.restart_kind: str | None = None
        self.completion: str | None = None

    # --- small helpers -------------------------------------------------------------------------
    def want(self, kind: str, status: str, reason: str, message: str = "") -> None:
        self.wanted[kind] = cond.Desired(kind, status, reason, message)

    def current(self, kind: str) -> dict[str, Any] | None:
        return cond.get(self.conditions, kind)

    def requeue(self, seconds: float) -> None:
        self.requeues.append(max(0.0, seconds))

    def delete_job(self, attempt: int, why: str) -> None:
        job_obj = self.observed.jobs[attempt]
        if not _deleting(job_obj):
            name = (job_obj.get("metadata") or {}).get("name") or naming.attempt_job_name(
                self.job.name, attempt
            )
            self.actions.append(DeleteJob(name, attempt, why))

    def finish_job(self, succeeded: bool, reason: str, message: str) -> None:
        self.want(
            cond.SUCCEEDED,
            "True" if succeeded else "False",
            reason if succeeded else reasons.NOT_SUCCEEDED,
            message if succeeded else "",
        )
        self.want(
            cond.FAILED,
            "False" if succeeded else "True",
            reasons.NOT_FAILED if succeeded else reason,
            "" if succeeded else message,
        )
        self.want(cond.RUNNING, "False", reason, "the job has finished")
        self.want(cond.RESTARTING, "False", reason, "the job has finished")
        self.want(cond.STALLED, "False", reasons.NOT_RUNNING, "the job has finished")
        self.completion_time = self.completion_time or rfc3339(self.now)
        self.completion = "succeeded" if succeeded else "failed"
        self.actions.append(DeleteConfigMap(spec_config_map_name(self.job.name)))
        if self.job.ttl_seconds_after_finished is not None:
            # No other pass is coming (a finished job has no timer, and the echo of our own deletes
            # queues nothing): the pass that finishes the job schedules its TTL pass.
            self.requeue(float(self.job.ttl_seconds_after_finished))

    # --- the rules, in order (see the module docstring) ----------------------------------------
    def run(self) -> None:
        if self.job.deleting:
            return
        if cond.is_true(self.conditions, cond.SUCCEEDED) or cond.is_true(self.conditions, cond.FAILED):
            self.finished()
            return
        if self.deadline_passed():
            return
        if self.observed.child_rejected:
            self.finish_job(False, reasons.CHILD_REJECTED, self.observed.child_rejected)
            return
        if naming.has_service(self.job.workers) and not self.observed.service_exists:
            self.actions.append(CreateService(build_service(self.job)))
        current = self.observed.jobs.get(self.attempt)
        outcome = None
        if current is not None and not _deleting(current):
            outcome = classify_attempt(current, self.observed.pods.get(self.attempt, ()), self.job.workers)
        if self.job.suspend and not (outcome and outcome.verdict in (Verdict.SUCCEEDED, Verdict.PERMANENT)):
            self.suspend(current)
            return
        if not self.clear_older_attempts(hold_backoff=current is None):
            return
        if current is None:
            self.start_attempt()
        elif outcome is not None:
            self.judge(outcome)

    def finished(self) -> None:
        failed = self.current(cond.FAILED) or {}
        if failed.get("status") == "True" and failed.get("reason") == reasons.DEADLINE_EXCEEDED:
            for attempt, job_obj in self.observed.jobs.items():
                if not _job_finished(job_obj):
                    self.delete_job(attempt, reasons.DEADLINE_EXCEEDED)
        if self.attempt in self.observed.jobs:
            self.workers = worker_summary(self.observed.pods.get(self.attempt, ()))
        ttl = self.job.ttl_seconds_after_finished
        completed = parse_time(self.completion_time)
        if ttl is None or completed is None:
            return
        remaining = (completed + datetime.timedelta(seconds=int(ttl)) - self.now).total_seconds()
        if remaining <= 0:
            self.actions.append(DeleteFineTuneJob(f"runPolicy.ttlSecondsAfterFinished={ttl} elapsed"))
        else:
            self.requeue(remaining)

    def deadline_passed(self) -> bool:
        deadline = self.job.active_deadline_seconds
        started = parse_time(self.start_time)
        if not deadline or started is None:
            return False
        remaining = (started + datetime.timedelta(seconds=int(deadline)) - self.now).total_seconds()
        if remaining > 0:
            self.requeue(remaining)
            return False
        message = (
            f"the job has run longer than runPolicy.activeDeadlineSeconds={deadline} "
            f"(started {self.start_time}); raise the deadline or recreate the job "
            "to continue from its last checkpoint"
        )
        self.finish_job(False, reasons.DEADLINE_EXCEEDED, message)
        for attempt, job_obj in self.observed.jobs.items():
            if not _job_finished(job_obj):
                self.delete_job(attempt, reasons.DEADLINE_EXCEEDED)
        return True

    def suspend(self, current: dict[str, Any] | None) -> None:
        if current is not None and not _deleting(current):
            # The stopped attempt is over; unsuspending starts the next one (not a restart).
            self.attempt += 1
        for attempt in sorted(self.observed.jobs):
            if attempt < self.attempt:
                self.delete_job(attempt, reasons.SUSPENDED)
        stopping = bool(self.observed.jobs) or any(self.observed.pods.values())
        message = (
            "runPolicy.suspend is true; stopping the workers (each gets its grace period to checkpoint)"
            if stopping
            else "runPolicy.suspend is true; no workers run. Set it to false to resume with a new attempt"
        )
        self.want(cond.SUSPENDED, "True", reasons.SUSPENDED, message)
        self.want(cond.RUNNING, "False", reasons.SUSPENDED, message)
        self.want(cond.RESTARTING, "False", reasons.SUSPENDED, message)
        self.want(cond.STALLED, "False", reasons.NOT_RUNNING, "the job is suspended")
        self.workers = worker_summary(self.observed.pods.get(self.attempt, ()))

    def clear_older_attempts(self, hold_backoff: bool) -> bool:
        """Delete Jobs of attempts before the current one; True when none (and none of their pods) is left."""
        older = sorted(attempt for attempt in self.observed.jobs if attempt < self.attempt)
        for attempt in older:
            hold = self.backoff_left(attempt) if hold_backoff else 0.0
            if hold > 0:
                self.requeue(hold)
            else:
                self.delete_job(attempt, f"replaced by attempt {self.attempt}")
        leftover_pods = any(pods for attempt, pods in self.observed.pods.items() if attempt < self.attempt)
        return not older and not leftover_pods

    def backoff_left(self, attempt: int) -> float:
        """Seconds the failed `attempt` still waits before the next attempt may start."""
        restarting = self.current(cond.RESTARTING) or {}
        if attempt != self.attempt - 1 or restarting.get("reason") != reasons.WORKER_FAILED:
            return 0.0
        delay = self.restart_delay(self.restarts["failures"])
        failed_at = failure_time(self.observed.jobs[attempt], self.observed.pods.get(attempt, ()))
        if failed_at is None:
            failed_at = parse_time(restarting.get("lastTransitionTime")) or self.now
        return max(0.0, (failed_at - self.now).total_seconds() + delay)

    def restart_delay(self, failures: int) -> float:
        """Backoff after the `failures`-th counted failure: runPolicy.backoffSeconds doubling, capped."""
        base = float(self.job.backoff_seconds)
        return restart_delay_seconds(failures, base, self.settings.restart_backoff_max_seconds)

    def start_attempt(self) -> None:
        refused = job_refusal(self.job, self.settings)
        if refused is not None:  # the operator's policies (job/policy.py) are checked per attempt
            self.finish_job(False, refused.reason, refused.message)
            return
        if self.attempt == 0:
            self.attempt = 1
        if not self.start_time:
            self.start_time = rfc3339(self.now)
        manifest = build_job(self.job, self.attempt, self.settings)
        self.actions.append(CreateConfigMap(build_spec_config_map(self.job, self.settings)))
        self.actions.append(CreateJob(self.attempt, manifest))
        name = manifest["metadata"]["name"]
        message = f"attempt {self.attempt}: Job {name} with {self.job.workers} workers"
        self.want(cond.CREATED, "True", reasons.ATTEMPT_CREATED, message)
        self.want(cond.RUNNING, "False", reasons.WORKERS_STARTING, f"attempt {self.attempt} is starting")
        self.not_suspended()
        self.events.append(Event("Normal", reasons.ATTEMPT_CREATED, f"created {message}"))
        self.workers = []

    def not_suspended(self) -> None:
        if cond.is_true(self.conditions, cond.SUSPENDED):
            self.want(cond.SUSPENDED, "False", reasons.RESUMED, f"resumed with attempt {self.attempt}")
        elif self.current(cond.SUSPENDED) is None:
            self.want(cond.SUSPENDED, "False", reasons.NOT_SUSPENDED, "")

    def judge(self, outcome: AttemptOutcome) -> None:
        attempt = self.attempt
        self.workers = worker_summary(self.observed.pods.get(attempt, ()))
        if outcome.verdict is not Verdict.QUEUED:
            self.not_suspended()
        verdict = outcome.verdict
        if verdict is Verdict.SUCCEEDED:
            self.finish_job(True, reasons.COMPLETED, self.completion_message(attempt, outcome))
        elif verdict is Verdict.PERMANENT:
            self.finish_job(False, reasons.INVALID_CONFIGURATION, outcome.message)
        elif verdict is Verdict.RETRYABLE:
            self.retry_after_failure(outcome)
        elif verdict is Verdict.DISRUPTED:
            self.restart_after_disruption(outcome)
        elif verdict is Verdict.QUEUED:
            # Kueue's own words (its Workload's conditions) explain more than the Job's "Job suspended".
            reason, message = self.observed.queue_words or (outcome.reason, outcome.message)
            self.want(cond.SUSPENDED, "True", reason, message)
            self.want(cond.RUNNING, "False", reasons.QUEUED, message)
        elif verdict is Verdict.UNSCHEDULABLE:
            previous = self.current(cond.RUNNING) or {}
            if previous.get("reason") != reasons.UNSCHEDULABLE:
                self.events.append(Event("Warning", reasons.UNSCHEDULABLE, outcome.message))
            self.want(cond.RUNNING, "False", reasons.UNSCHEDULABLE, outcome.message)
        elif verdict is Verdict.RUNNING:
            message = f"attempt {attempt}: {outcome.message}"
            self.want(cond.RUNNING, "True", reasons.ALL_WORKERS_RUNNING, message)
            self.want(cond.RESTARTING, "False", reasons.RUNNING, message)
            stalled = stalled_condition(
                True,
                self.observed.progress_step,
                self.observed.step_changed_at,
                self.now,
                self.settings.stall_after_seconds,
            )
            if stalled is not None:
                self.wanted[cond.STALLED] = stalled
            due = stall_check_due(self.observed.step_changed_at, self.now, self.settings.stall_after_seconds)
            if due:
                self.requeue(due)
        else:  # STARTING
            self.want(cond.RUNNING, "False", outcome.reason, f"attempt {attempt}: {outcome.message}")

    def completion_message(self, attempt: int, outcome: AttemptOutcome) -> str:
        """'attempt 1: all 2 workers succeeded, final f1_macro 0.91, ...; model at s3://...'."""
        summary = completion_summary(self.observed.pods.get(attempt, ()))
        progress = merged_progress(self.job.status.get("progress"), self.observed.progress, summary, True)
        output = (summary or {}).get(SUMMARY_OUTPUT) or self.job.output_uri
        metrics = final_metric_text(progress, summary, self.job.evaluation_metric)
        return f"attempt {attempt}: {outcome.message}{metrics}; model at {output}"

    def retry_after_failure(self, outcome: AttemptOutcome) -> None:
        attempt = self.attempt
        failures = self.restarts["failures"] + 1
        limit = self.job.max_restarts
        if failures > limit:
            self.finish_job(
                False,
                reasons.RESTART_LIMIT_EXCEEDED,
                f"attempt {attempt} failed: {outcome.message}. The job failed {failures} times, more than "
                f"runPolicy.maxRestarts={limit} allows; fix the cause (see the workers' logs) "
                "and recreate the job",
            )
            return
        self.restarts["failures"] = failures
        self.restarts["total"] += 1
        self.attempt = attempt + 1
        delay = self.restart_delay(failures)
        message = (
            f"attempt {attempt} failed: {outcome.message}; attempt {self.attempt} starts in {int(delay)}s "
            f"(failure {failures} of at most {limit + 1})"
        )
        self.want(cond.RESTARTING, "True", reasons.WORKER_FAILED, message)
        self.want(cond.RUNNING, "False", reasons.RESTARTING, message)
        self.restart_kind = "failure"
        if delay > 0:
            self.requeue(delay)
        else:
            self.delete_job(attempt, f"replaced by attempt {self.attempt}")

    def restart_after_disruption(self, outcome: AttemptOutcome) -> None:
        attempt = self.attempt
        self.restarts["preemptions"] += 1
        self.restarts["total"] += 1
        self.attempt = attempt + 1
        message = (
            f"attempt {attempt} was disrupted: {outcome.message}; attempt {self.attempt} starts now "
            "(not counted against runPolicy.maxRestarts)"
        )
        self.want(cond.RESTARTING, "True", reasons.DISRUPTED, message)
        self.want(cond.RUNNING, "False", reasons.RESTARTING, message)
        self.restart_kind = "preemption"
        self.delete_job(attempt, f"replaced by attempt {self.attempt}")

    # --- the result ----------------------------------------------------------------------------
    def result(self) -> RulesResult:
        return RulesResult(
            wanted=self.wanted,
            attempt=self.attempt,
            restarts=self.restarts,
            start_time=self.start_time,
            completion_time=self.completion_time,
            workers=self.workers,
            actions=self.actions,
            events=self.events,
            requeues=self.requeues,
            restart_kind=self.restart_kind,
            completion=self.completion,
        )


def decide(job: JobView, observed: Observed, now: datetime.datetime, settings: Settings) -> Decision:
    """Everything one reconcile pass should do for `job`, given what exists (see the module docstring)."""
    one_pass = _Pass(job, observed, now, settings)
    one_pass.run()
    return assemble_decision(job, observed, now, one_pass.result())
