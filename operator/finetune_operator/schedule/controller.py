"""The schedule controller: a work queue of schedule keys, and one pass per key (observe, plan, act,
write status once, then post events).

Why its own queue and not Kopf timers: Kopf needs a finalizer on every object with a timer, and the
FineTuneJob controller already works this way (../job/controller.py), so schedules get the same
mechanics (../reconcile_pool.py): watch events add a key, each key is requeued for its next scheduled time
(or the resync interval, whichever is sooner), and a key is never processed by two workers at once.
With the fake clock (clock.py) a watcher requeues every schedule whenever the clock file changes, so
tests move time and see the result within a fraction of a second.
"""

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from finetune_operator import reasons
from finetune_operator.kube import Kube
from finetune_operator.reconcile_pool import Key, ReconcilePool
from finetune_operator.schedule.api import CreateRefused, ScheduleApi
from finetune_operator.schedule.children import child_from_body, is_controlled_by, parse_time
from finetune_operator.schedule.clock import FAKE_CLOCK_ENV, Clock
from finetune_operator.schedule.plan import Event, Plan, plan_pass

logger = logging.getLogger("finetune_operator.schedule")

CLOCK_POLL_SECONDS = 0.2
ERROR_RETRY_SECONDS = 5.0
"""A pass that failed (not a conflict) is retried after this long."""
EVENT_MEMORY = 256
"""Event keys remembered per schedule, so an occurrence seen by every pass is posted once."""


def _requeue_delay(plan: Plan, now: datetime, resync_seconds: float) -> float:
    upcoming = parse_time(plan.status.get("nextScheduleTime"))
    if upcoming is None:
        return resync_seconds
    return max(0.5, min(resync_seconds, (upcoming - now).total_seconds() + 0.5))


def _without_empty(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v is not None}


class ScheduleController:
    def __init__(
        self,
        api: ScheduleApi,
        kube: Kube,
        clock: Clock,
        *,
        reconcile_workers: int = 2,
        resync_seconds: float = 60.0,
        clock_file: Path | None = None,
    ):
        self.api = api
        self.kube = kube
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.clock_file = clock_file
        self.known: set[Key] = set()
        self._posted: dict[Key, list[str]] = {}
        self._clock_task: asyncio.Task[None] | None = None
        self.pool = ReconcilePool(
            self.reconcile,
            concurrency=reconcile_workers,
            name="schedule-worker",
            logger=logger,
            failure_message="schedule pass failed; retrying",
            error_backoff=lambda failures: ERROR_RETRY_SECONDS,
        )

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()
        if self.clock_file is not None:
            self._clock_task = asyncio.create_task(self._watch_clock_file(self.clock_file), name="fake-clock")

    async def stop(self) -> None:
        await self.pool.stop()
        if self._clock_task is not None:
            self._clock_task.cancel()
            await asyncio.gather(self._clock_task, return_exceptions=True)
            self._clock_task = None

    def enqueue(self, key: Key) -> None:
        self.known.add(key)
        self.pool.add(key)

    def forget(self, key: Key) -> None:
        self.known.discard(key)
        self.pool.forget(key)
        self._posted.pop(key, None)

    async def _watch_clock_file(self, path: Path) -> None:
        """Test-only (FINETUNE_OPERATOR_FAKE_CLOCK_FILE): requeue every schedule when the time moves."""
        last = None
        while True:
            try:
                current = await asyncio.to_thread(path.read_text, encoding="utf-8")
            except OSError:
                current = None
            if current != last:
                last = current
                logger.info(
                    "fake clock moved", extra={"action": FAKE_CLOCK_ENV, "result": (current or "").strip()}
                )
                for key in list(self.known):
                    self.pool.add(key)
            await asyncio.sleep(CLOCK_POLL_SECONDS)

    # --- one pass --------------------------------------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        """One pass for the schedule `key`; seconds until the next pass, or None when it is gone."""
        namespace, name = key
        body = await self.api.get_schedule(namespace, name)
        if body is None:
            self.forget(key)
            return None
        runs = await self.api.list_runs(namespace, name)
        now = self.clock()
        plan = plan_pass(body, runs, now)
        await self._act(body, plan)
        old = _without_empty(body.get("status") or {})
        new = _without_empty(plan.status)
        if new != old:
            patch = {**{k: None for k in old if k not in new}, **new}
            await self.api.patch_schedule_status(
                namespace, name, patch, body["metadata"].get("resourceVersion")
            )
        await self._post(key, body, plan.events, now)
        return _requeue_delay(plan, now, self.resync_seconds)

    async def _act(self, body: dict[str, Any], plan: Plan) -> None:
        for child in plan.delete:
            await self.kube.delete_finetunejob(child.namespace, child.name, child.uid)
        if plan.create is None:
            return
        try:
            run, created = await self.api.create_run(plan.create)
        except CreateRefused as error:
            plan.status["lastScheduleTime"] = (body.get("status") or {}).get("lastScheduleTime")
            plan.status["conditions"] = [
                {
                    **plan.status["conditions"][0],
                    "status": "False",
                    "reason": reasons.FAILED_CREATE,
                    "message": str(error),
                }
            ]
            plan.events[:] = [e for e in plan.events if e.reason != reasons.SUCCESSFUL_CREATE]
            plan.events.append(
                Event(
                    "Warning", reasons.FAILED_CREATE, str(error), f"failed/{plan.create['metadata']['name']}"
                )
            )
            return
        if run is None or not is_controlled_by(run, body["metadata"]["uid"]):
            return
        if not created:
            plan.events[:] = [e for e in plan.events if e.reason != reasons.SUCCESSFUL_CREATE]
        child = child_from_body(run)
        if child.state == "active" and all(ref["uid"] != child.uid for ref in plan.status["active"]):
            plan.status["active"] = [*plan.status["active"], child.reference()]
            plan.status["activeCount"] = len(plan.status["active"])

    async def _post(self, key: Key, body: dict[str, Any], events: list[Event], now: datetime) -> None:
        posted = self._posted.setdefault(key, [])
        for event in events:
            if event.key in posted:
                continue
            await self.kube.post_event(body, event.type, event.reason, event.message, now)
            posted.append(event.key)
            del posted[:-EVENT_MEMORY]
            logger.info(event.message, extra={"namespace": key[0], "job": key[1], "reason": event.reason})
