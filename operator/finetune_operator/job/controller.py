"""One reconcile pass per FineTuneJob key: observe, decide, write status, act, tell (workers.py runs them).

Order within a pass (DESIGN.md D7, D8):
1. read the FineTuneJob and what exists for it (Service, attempt Jobs, pods), all fresh from the API;
2. `reconcile.decide` (pure);
3. write the status once, guarded by the FineTuneJob's resourceVersion: a concurrent change (409)
   aborts the pass before anything is acted on, and the key is retried; this write is what makes
   restart accounting exactly-once (see reconcile's docstring);
4. carry out the actions (idempotent);
5. post the Events, only after the status write succeeded;
6. schedule the next pass (the decision's requeue, capped by the resync period).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from finetune_operator import conditions as cond
from finetune_operator import naming
from finetune_operator.job.assembly import invalid_spec_status
from finetune_operator.job.builders import checkpoint_base_uri
from finetune_operator.job.failure_policy import pod_index
from finetune_operator.job.jobview import InvalidSpecError, JobView
from finetune_operator.job.plan import (
    CreateJob,
    CreateService,
    Decision,
    DeleteFineTuneJob,
    DeleteJob,
    Observed,
)
from finetune_operator.job.progress.poller import ProgressPoller, metrics_url
from finetune_operator.job.progress.scrape import checkpoint_fields, progress_fields
from finetune_operator.job.reconcile import decide
from finetune_operator.kube import Kube
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.reconcile_pool import Key, WorkerPool
from finetune_operator.settings import Settings

logger = logging.getLogger("finetune_operator")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _finished(decision: Decision) -> bool:
    conditions = decision.status.get("conditions") or []
    return cond.is_true(conditions, cond.SUCCEEDED) or cond.is_true(conditions, cond.FAILED)


def rank0_pod_ip(observed: Observed) -> str | None:
    """The address of the current attempt's running rank-0 pod, whose metrics carry the progress."""
    if not observed.jobs:
        return None
    for pod in observed.pods.get(max(observed.jobs), ()):
        status = pod.get("status") or {}
        deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
        if pod_index(pod) == 0 and status.get("phase") == "Running" and status.get("podIP") and not deleting:
            return str(status["podIP"])
    return None


def group_by_attempt(objects: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for obj in objects:
        attempt = naming.attempt_of((obj.get("metadata") or {}).get("labels"))
        if attempt is not None:
            grouped.setdefault(attempt, []).append(obj)
    return grouped


class Controller:
    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        metrics: OperatorMetrics,
        clock: Callable[[], datetime.datetime] = utcnow,
    ):
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.poller = ProgressPoller(
            settings.progress_interval_seconds, settings.progress_max_backoff_seconds
        )
        self._checkpoint_event_at: dict[Key, datetime.datetime] = {}
        self.pool = WorkerPool(
            self.reconcile,
            workers=settings.workers,
            name="reconcile-worker",
            logger=logger,
            failure_message="reconcile failed; retrying",
            on_pass=self._record_pass,
        )

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()

    async def stop(self) -> None:
        await self.pool.stop()

    def enqueue(self, key: Key) -> None:
        self.pool.add(key)

    def forget(self, key: Key) -> None:
        self.pool.forget(key)
        self.metrics.forget_job(key)
        self.poller.forget(key)
        self._checkpoint_event_at.pop(key, None)

    def _record_pass(self, result: str, seconds: float) -> None:
        self.metrics.reconcile_total.labels(result=result).inc()
        self.metrics.reconcile_duration.observe(seconds)

    # --- one pass --------------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        """One pass for `key`; returns seconds until the next pass, or None when the job is gone."""
        namespace, name = key
        body = await self.kube.get_finetunejob(namespace, name)
        if body is None:
            self.forget(key)
            return None
        now = self.clock()
        metadata = body["metadata"]
        if metadata.get("deletionTimestamp"):
            return None  # garbage collection removes the children through their owner references
        try:
            job = JobView.from_body(body)
        except InvalidSpecError as error:
            status, events = invalid_spec_status(
                body.get("status") or {}, int(metadata.get("generation") or 0), str(error), now
            )
            await self._write_status(body, status)
            await self._post_events(
                body, [(event.type, event.reason, event.message) for event in events], now
            )
            return self.settings.resync_seconds

        observed = await self.observe(job)
        observed = await self.observe_progress(job, observed, now)
        decision = decide(job, observed, now, self.settings)
        await self._write_status(body, decision.status)
        await self._act(job, decision)
        await self._post_events(
            body, [(event.type, event.reason, event.message) for event in decision.events], now
        )
        self._count(key, decision)
        self.metrics.set_job_progress(key, decision.status)
        if any(event.reason == "CheckpointCommitted" for event in decision.events):
            self._checkpoint_event_at[key] = now
        if _finished(decision):
            self.poller.forget(key)  # nothing left to scrape; the status keeps the last numbers
        if decision.restart_kind or decision.actions:
            logger.info(
                "reconciled: %s",
                ", ".join(type(action).__name__ for action in decision.actions)
                or decision.status.get("phase"),
                extra={"namespace": namespace, "job": name, "attempt": decision.status.get("attempt")},
            )
        if any(isinstance(action, DeleteFineTuneJob) for action in decision.actions):
            return None
        delay = self.settings.resync_seconds
        if decision.requeue_after is not None:
            delay = min(delay, decision.requeue_after + 0.05)
        if rank0_pod_ip(observed) is not None and not _finished(decision):
            delay = min(delay, self.poller.seconds_until_due(key, self.clock()) + 0.05)
        return delay

    async def observe(self, job: JobView) -> Observed:
        jobs, pods, service = await asyncio.gather(
            self.kube.list_jobs(job.namespace, job.uid),
            self.kube.list_pods(job.namespace, job.uid),
            self.kube.service_exists(job.namespace, naming.service_name(job.name)),
        )
        jobs_by_attempt = {attempt: objs[0] for attempt, objs in group_by_attempt(jobs).items()}
        return Observed(service_exists=service, jobs=jobs_by_attempt, pods=group_by_attempt(pods))

    async def observe_progress(self, job: JobView, observed: Observed, now: datetime.datetime) -> Observed:
        """Add rank 0's progress (scraped when due, D6) and the checkpoint event rate limit."""
        key = (job.namespace, job.name)
        last_event = self._checkpoint_event_at.get(key)
        due = last_event is None or (now - last_event).total_seconds() >= (
            self.settings.checkpoint_event_interval_seconds
        )
        pod_ip = rank0_pod_ip(observed)
        state = (
            await self.poller.refresh(key, metrics_url(pod_ip, naming.METRICS_PORT), now)
            if pod_ip is not None
            else self.poller.latest(key)
        )
        if state is None or state.sample is None:
            return dataclasses.replace(observed, checkpoint_event_due=due)
        fresh = pod_ip is not None and state.failures == 0
        sample = state.sample
        return dataclasses.replace(
            observed,
            progress=progress_fields(sample, state.steps_per_second, now) if fresh else None,
            checkpoint=checkpoint_fields(sample, checkpoint_base_uri(job, self.settings)) if fresh else None,
            progress_step=sample.step,
            step_changed_at=state.step_changed_at,
            checkpoint_event_due=due,
        )

    async def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        if status == (body.get("status") or {}):
            return
        metadata = body["metadata"]
        await self.kube.patch_finetunejob_status(
            metadata["namespace"], metadata["name"], status, metadata.get("resourceVersion")
        )

    async def _act(self, job: JobView, decision: Decision) -> None:
        for action in decision.actions:
            extra = {"namespace": job.namespace, "job": job.name, "action": type(action).__name__}
            if isinstance(action, CreateService):
                await self.kube.create_service(action.manifest)
            elif isinstance(action, CreateJob):
                created = await self.kube.create_job(action.manifest)
                logger.info(
                    "attempt %d Job %s", action.attempt, "created" if created else "exists", extra=extra
                )
            elif isinstance(action, DeleteJob):
                await self.kube.delete_job(job.namespace, action.name)
                logger.info("deleting Job %s: %s", action.name, action.why, extra=extra)
            elif isinstance(action, DeleteFineTuneJob):
                await self.kube.delete_finetunejob(job.namespace, job.name, job.uid)
                logger.info("deleting the FineTuneJob: %s", action.why, extra=extra)

    async def _post_events(
        self, body: dict[str, Any], events: list[tuple[str, str, str]], now: datetime.datetime
    ) -> None:
        for event_type, reason, message in events:
            await self.kube.post_event(body, event_type, reason, message, now)

    def _count(self, key: Key, decision: Decision) -> None:
        if decision.restart_kind:
            self.metrics.restarts_total.labels(kind=decision.restart_kind).inc()
        if decision.completion:
            self.metrics.completions_total.labels(outcome=decision.completion).inc()
        conditions = decision.status.get("conditions") or []
        self.metrics.set_job_conditions(
            key, [kind for kind in cond.ALL_TYPES if cond.is_true(conditions, kind)]
        )
