"""One reconcile pass per FineTuneJob key: observe, decide, write status, act, tell (run by reconcile_pool).

Order within a pass (docs/architecture.md "Status conditions" and "Level-triggered reconcile"):
1. read the FineTuneJob and what exists for it (Service, attempt Jobs, pods) **from memory**: the
   FineTuneJob as its watch last delivered it (or as our own status write returned it), the
   children from the watch-fed cache (job/cache.py). A pass makes no read request unless the job
   has not been seen yet or its last status write conflicted (issue 16);
2. if a create or delete of an earlier pass is not in the cache yet (expectations.py), stop here:
   the watch event that shows it queues the key again, so a lagging cache never creates twice;
3. `reconcile.decide` (pure);
4. write the status once, guarded by the FineTuneJob's resourceVersion, and only when it changed
   (a progress-only change at most once per progress interval); a concurrent change (409) aborts
   the pass before anything is acted on, and the key is retried with a fresh read; this write is
   what makes restart accounting exactly-once (see reconcile's docstring). The watch event of our
   own write does not queue another pass;
5. post the Events, only after the status write succeeded, and carry out the actions, the two
   concurrently (actions are idempotent, creates go out together, each create/delete is recorded
   as an expectation; a child the API server refuses for good fails the job in the next pass);
6. schedule the next pass: the decision's requeue, capped by the resync period; a finished job
   has no timer at all (only a change to it or its children, or its TTL, brings it back).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

from finetune_operator import conditions as cond
from finetune_operator import naming, reasons
from finetune_operator.crashpoints import crash_point
from finetune_operator.expectations import Expectations
from finetune_operator.informer import trim_metadata
from finetune_operator.job.actions import Actor, ChildRejected, api_message
from finetune_operator.job.assembly import invalid_spec_status
from finetune_operator.job.cache import ChildCache, group_by_attempt
from finetune_operator.job.jobview import InvalidSpecError, JobView
from finetune_operator.job.kueue import QUEUE_RECHECK_SECONDS, admission_words, queued_job
from finetune_operator.job.plan import (
    Decision,
    DeleteFineTuneJob,
    Event,
    Observed,
)
from finetune_operator.job.pods import pod_index
from finetune_operator.job.progress.poller import JobProgress, ProgressPoller, metrics_url
from finetune_operator.job.progress.scrape import checkpoint_fields, progress_fields
from finetune_operator.job.progress.status import detail_only_change, drop_non_finite
from finetune_operator.job.reconcile import decide
from finetune_operator.job.scrapes import ScrapeTimers
from finetune_operator.kube import Conflict, Kube
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.reconcile_pool import Key, ReconcilePool
from finetune_operator.rest import ApiError
from finetune_operator.settings import Settings

logger = logging.getLogger("finetune_operator")

__all__ = ["Controller", "group_by_attempt", "rank0_pod_ip"]

CHILD_EVENT_BATCH_SECONDS = 0.5
"""A child's event queues its job this much later, so a burst (a gang's pods starting or ending
together, the Job's status following) costs one pass, as the Job controller's sync batch does."""
EXPECTATION_RECHECK_SECONDS = 5.0
"""A pass held by an unmet expectation looks again after this long even if no event comes."""
NOT_SYNCED_RECHECK_SECONDS = 1.0


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _finished(decision: Decision) -> bool:
    conditions = decision.status.get("conditions") or []
    return cond.is_true(conditions, cond.SUCCEEDED) or cond.is_true(conditions, cond.FAILED)


def _version(body: dict[str, Any] | None) -> int | None:
    """resourceVersion as a number (etcd's revision), to tell a newer delivery from an older one."""
    value = ((body or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
        self.scrapes = ScrapeTimers(self.poller, self._scraped, clock)
        self.children = ChildCache(kube, settings.namespaces, self._child_changed)
        self.expectations = Expectations()
        self.actor = Actor(kube, self.children, self.expectations)
        self._bodies: dict[Key, dict[str, Any]] = {}
        """FineTuneJobs as last delivered by the watch or returned by our own status write."""
        self._checkpoint_event_at: dict[Key, datetime.datetime] = {}
        self._progress_written_at: dict[Key, datetime.datetime] = {}
        self._non_finite: dict[Key, tuple[str, ...]] = {}
        self._rejected: dict[Key, tuple[str, str]] = {}
        """key -> (job uid, message) of a child the API refused for good; read by the next pass."""
        self._queue_words: dict[Key, tuple[str, str, datetime.datetime, tuple[str, str] | None]] = {}
        self._done: set[Key] = set()
        """Finished jobs (Succeeded or Failed at their last pass): their children's updates queue nothing."""
        self._held: set[Key] = set()
        """Keys whose last pass stopped at an unmet expectation: the watch event meeting it queues them."""
        self._triggers: dict[Key, str] = {}
        """key -> what queued its next pass (the first cause since the last pass), for the metric."""
        """key -> (attempt Job uid, its resourceVersion, read at, Kueue's words) of a queued job."""
        self.pool = ReconcilePool(
            self.reconcile,
            concurrency=settings.reconcile_workers,
            name="reconcile-worker",
            logger=logger,
            failure_message="reconcile failed; retrying",
            on_pass=self._record_pass,
        )

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Fill the child cache (one list per kind), then start the workers: a pass never decides on
        an incomplete cache."""
        self.children.start()
        await self.children.wait_synced()
        self.pool.start()

    async def stop(self) -> None:
        self.scrapes.stop()
        await self.pool.stop()
        await self.children.stop()

    def enqueue(self, key: Key) -> None:
        self.pool.add(key)

    def _child_changed(self, key: Key, kind: str, name: str, change: str) -> None:
        """A child changed in a way a pass reads (job/relevance.py): queue its job, batched; the
        echo of our own create or delete queues nothing unless a pass waits for it."""
        if self.expectations.echo(key, kind, name, change) and key not in self._held:
            return
        if key in self._done and change != "deleted":
            return  # a finished job's children only wind down; a deletion is still looked at
        self._triggers[key] = kind
        self.pool.queue.add_after(key, CHILD_EVENT_BATCH_SECONDS)

    def _scraped(self, key: Key) -> None:
        """A scrape between passes learned something a pass reads (job/scrapes.py)."""
        self._triggers[key] = "progress"
        self.enqueue(key)

    def _trigger(self, key: Key) -> None:
        """Count what queued this pass (metrics: reconcile_triggers_total), for finding the causes."""
        self.metrics.reconcile_triggers_total.labels(trigger=self._triggers.pop(key, "retry")).inc()

    def forget(self, key: Key) -> None:
        self.pool.forget(key)
        self.metrics.forget_job(key)
        self.poller.forget(key)
        self.scrapes.cancel(key)
        self.expectations.forget(key)
        self._held.discard(key)
        self._done.discard(key)
        for memory in (
            self._triggers,
            self._bodies,
            self._checkpoint_event_at,
            self._progress_written_at,
            self._non_finite,
            self._rejected,
            self._queue_words,
        ):
            memory.pop(key, None)  # type: ignore[attr-defined]

    def on_finetunejob_event(self, event: dict[str, Any]) -> None:
        """A FineTuneJob watch event: remember the object; queue a pass unless nothing new arrived.

        Nothing new: the same or an older resourceVersion than we hold, which is what a watch
        relist re-delivers and what the echo of our own status write is (we hold the write's
        answer already). That echo used to cost a full pass per status write.
        """
        obj = event.get("object") or {}
        metadata = obj.get("metadata") or {}
        key = (metadata.get("namespace"), metadata.get("name"))
        if event.get("type") == "DELETED":
            self.forget(key)  # type: ignore[arg-type]
            return
        held, arrived = _version(self._bodies.get(key)), _version(obj)  # type: ignore[arg-type]
        if held is not None and arrived is not None and arrived <= held:
            return
        self._remember(key, obj)  # type: ignore[arg-type]
        self._triggers[key] = "finetunejob"  # type: ignore[index]
        self.enqueue(key)  # type: ignore[arg-type]

    def _remember(self, key: Key, body: dict[str, Any]) -> None:
        """Hold a FineTuneJob without its managedFields (the largest part of its metadata)."""
        self._bodies[key] = {**body, "metadata": trim_metadata(body.get("metadata") or {})}

    def _record_pass(self, result: str, seconds: float) -> None:
        self.metrics.reconcile_total.labels(result=result).inc()
        self.metrics.reconcile_duration.observe(seconds)

    # --- one pass --------------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        """One pass for `key`; returns seconds until the next pass, or None when none is needed."""
        namespace, name = key
        self._trigger(key)
        self._held.discard(key)
        body = self._bodies.get(key)
        if body is None:  # not delivered by the watch yet, or dropped after a conflict
            body = await self.kube.get_finetunejob(namespace, name)
            if body is None:
                self.forget(key)
                return None
            self._remember(key, body)
        now = self.clock()
        metadata = body["metadata"]
        if metadata.get("deletionTimestamp"):
            return None  # garbage collection removes the children through their owner references
        try:
            job = JobView.from_body(body, default_checkpoint_uri=self.settings.default_checkpoint_uri)
        except InvalidSpecError as error:
            status, events = invalid_spec_status(
                body.get("status") or {}, int(metadata.get("generation") or 0), str(error), now
            )
            await self._write_status(key, body, status, now)
            await self._post_events(body, events, now)
            return None
        if not self.children.synced:
            self._triggers[key] = "notsynced"
            return NOT_SYNCED_RECHECK_SECONDS
        unmet = self.expectations.unmet(key, self.children)
        if unmet:
            logger.debug(
                "waiting for the cache to show %s",
                ", ".join(f"{e.kind}/{e.name}" for e in unmet),
                extra={"namespace": namespace, "job": name},
            )
            self._triggers[key] = "expectation"
            self._held.add(key)
            return EXPECTATION_RECHECK_SECONDS

        observed = self.children.observe(key, job.uid)
        observed = await self.observe_progress(job, observed, now)
        observed = await self.observe_queue(key, observed, now)
        rejected = self._rejected.get(key)
        if rejected is not None and rejected[0] == job.uid:
            observed = dataclasses.replace(observed, child_rejected=rejected[1])
        decision = decide(job, observed, now, self.settings)
        events = [*decision.events, *self._non_finite_warning(key, rank0_pod_ip(observed) is not None)]
        coalesced = await self._write_status(key, body, decision.status, now)
        # Events tell the transition just written; they go out together with the actions (neither
        # waits for the other: a new job's Job used to wait behind its Event's round trip).
        try:
            await asyncio.gather(self._post_events(body, events, now), self.actor.act(job, decision))
        except ChildRejected as error:
            # Ends the job Failed (reason ChildRejected) in the next pass, through the status write.
            logger.warning("%s", error, extra={"namespace": namespace, "job": name})
            self._rejected[key] = (job.uid, str(error))
            return 0.0
        self._count(key, decision)
        self.metrics.set_job_progress(key, decision.status)
        if any(event.reason == reasons.CHECKPOINT_COMMITTED for event in decision.events):
            self._checkpoint_event_at[key] = now
        finished = _finished(decision)
        (self._done.add if finished else self._done.discard)(key)
        if finished:
            self.poller.forget(key)  # nothing left to scrape; the status keeps the last numbers
            self.scrapes.cancel(key)
        if decision.restart_kind or decision.actions:
            logger.info(
                "reconciled: %s",
                ", ".join(type(action).__name__ for action in decision.actions)
                or decision.status.get("phase"),
                extra={"namespace": namespace, "job": name, "attempt": decision.status.get("attempt")},
            )
        if any(isinstance(action, DeleteFineTuneJob) for action in decision.actions):
            return None
        return self._next_pass(key, decision, observed, finished, coalesced)

    def _next_pass(
        self, key: Key, decision: Decision, observed: Observed, finished: bool, coalesced: float | None
    ) -> float | None:
        """Seconds until this job needs a pass with no event: its rules' timers, the next scrape,
        a coalesced progress write, the resync. A finished job needs none but its TTL."""
        delays = [] if decision.requeue_after is None else [(decision.requeue_after + 0.05, "requeue")]
        if not finished:
            delays.append((self.settings.resync_seconds, "resync"))
            pod_ip = rank0_pod_ip(observed)
            if pod_ip is not None:  # scraped by a timer of its own; a pass only if it learns something
                due = self.poller.seconds_until_due(key, self.clock()) + 0.05
                self.scrapes.schedule(key, metrics_url(pod_ip, naming.METRICS_PORT), due)
            else:
                self.scrapes.cancel(key)
            if coalesced is not None:
                delays.append((coalesced, "coalesced"))
            if observed.queue_words is not None or queued_job(observed.jobs) is not None:
                delays.append((QUEUE_RECHECK_SECONDS + 0.05, "queue"))  # Kueue's changes bring no event
        if not delays:
            return None
        delay, why = min(delays)
        self._triggers.setdefault(key, why)
        return delay

    async def observe_queue(self, key: Key, observed: Observed, now: datetime.datetime) -> Observed:
        """Add Kueue's words about the queued current attempt (job/kueue.py), read from its Workload
        when the Job changed or the last read is QUEUE_RECHECK_SECONDS old; best-effort."""
        job_obj = queued_job(observed.jobs)
        if job_obj is None:
            self._queue_words.pop(key, None)
            return observed
        metadata = job_obj.get("metadata") or {}
        uid, version = str(metadata.get("uid") or ""), str(metadata.get("resourceVersion") or "")
        held = self._queue_words.get(key)
        fresh = held is not None and (now - held[2]).total_seconds() < QUEUE_RECHECK_SECONDS
        if held is not None and fresh and held[:2] == (uid, version):
            return dataclasses.replace(observed, queue_words=held[3])
        try:
            workloads = await self.kube.kueue_workloads(key[0], uid)
        except (ApiError, OSError, TimeoutError) as error:
            logger.info(
                "could not read Kueue's workload: %s",
                api_message(error) if isinstance(error, ApiError) else error,
                extra={"namespace": key[0], "job": key[1]},
            )
            workloads = None
        words = admission_words(workloads or ())
        self._queue_words[key] = (uid, version, now, words)
        return dataclasses.replace(observed, queue_words=words)

    async def observe_progress(self, job: JobView, observed: Observed, now: datetime.datetime) -> Observed:
        """Add rank 0's progress (scraped when due; docs/architecture.md, "Progress is pulled") and the
        checkpoint event rate limit."""
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
            progress=progress_fields(sample, state.steps_per_second, state.scraped_at or now)
            if fresh
            else None,
            checkpoint=checkpoint_fields(sample, job.checkpoint_uri) if fresh else None,
            progress_step=sample.step,
            step_changed_at=state.step_changed_at,
            checkpoint_event_due=due,
        )

    def _non_finite_warning(self, key: Key, running: bool) -> list[Event]:
        """A NonFiniteLoss warning when rank 0 starts reporting NaN/Inf (once per onset, issue 13 item 7)."""
        state: JobProgress | None = self.poller.latest(key)
        current = state.sample.non_finite if running and state and state.sample and not state.failures else ()
        previous = self._non_finite.get(key, ())
        if current:
            self._non_finite[key] = current
        else:
            self._non_finite.pop(key, None)
        if not current or previous:
            return []
        return [
            Event(
                "Warning",
                reasons.NON_FINITE_LOSS,
                f"rank 0 reports non-finite {', '.join(current)} (NaN or Inf: training diverged or fp16 "
                "overflowed); those values are left out of status.progress. Lower the learning rate or "
                "use bf16, then recreate the job to resume from its last checkpoint",
            )
        ]

    async def _write_status(
        self, key: Key, body: dict[str, Any], status: dict[str, Any], now: datetime.datetime
    ) -> float | None:
        """Write `status` if it changed; returns seconds until a coalesced progress write is due."""
        previous = body.get("status") or {}
        status = drop_non_finite(status)
        if status == previous:
            self.metrics.status_writes_total.labels(result="unchanged").inc()
            return None
        if detail_only_change(previous, status):
            written = self._progress_written_at.get(key)
            wait = (
                0.0
                if written is None
                else self.settings.progress_interval_seconds - (now - written).total_seconds()
            )
            if wait > 0:
                self.metrics.status_writes_total.labels(result="coalesced").inc()
                return wait + 0.05
        metadata = body["metadata"]
        crash_point("before-status-write")  # test-only hook (crashpoints.py)
        try:
            result = await self.kube.patch_finetunejob_status(
                metadata["namespace"], metadata["name"], status, metadata.get("resourceVersion")
            )
        except Conflict:
            self._bodies.pop(key, None)  # the retry reads the FineTuneJob fresh
            raise
        self.metrics.status_writes_total.labels(result="written").inc()
        crash_point("after-status-write")
        if result is not None:
            self._remember(key, result)  # its watch echo then carries nothing new: no extra pass
        self._progress_written_at[key] = now  # any write carries the newest detail
        return None

    async def _post_events(self, body: dict[str, Any], events: list[Event], now: datetime.datetime) -> None:
        await asyncio.gather(
            *(self.kube.post_event(body, event.type, event.reason, event.message, now) for event in events)
        )

    def _count(self, key: Key, decision: Decision) -> None:
        if decision.restart_kind:
            self.metrics.restarts_total.labels(kind=decision.restart_kind).inc()
        if decision.completion:
            self.metrics.completions_total.labels(outcome=decision.completion).inc()
        conditions = decision.status.get("conditions") or []
        self.metrics.set_job_conditions(
            key, [kind for kind in cond.ALL_TYPES if cond.is_true(conditions, kind)]
        )
        for kind, count in self.children.sizes().items():
            self.metrics.cache_objects.labels(kind=kind).set(count)
