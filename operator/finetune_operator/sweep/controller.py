"""The sweep controller: a work queue of sweep keys, and one pass per key (observe, plan, write
status, act, post events).

Why status before actions (the schedule controller acts first): a trial's suggestion must be in
status before its FineTuneJob exists, so a restart can never run a trial whose parameters the sweep
does not know, nor suggest a second set for the same index. Creation is idempotent by name.

The Optuna decisions run in a thread (`asyncio.to_thread`): a GP or TPE fit over many trials can
take longer than the event loop should be blocked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from finetune_operator.kube import Kube
from finetune_operator.reconcile_pool import Key, ReconcilePool
from finetune_operator.sweep.api import CreateRefused, SweepApi
from finetune_operator.sweep.metrics import SweepMetrics
from finetune_operator.sweep.plan import Event, Plan, plan_pass

logger = logging.getLogger("finetune_operator.sweep")

ERROR_RETRY_SECONDS = 5.0
EVENT_MEMORY = 512
"""Event keys remembered per sweep, so an occurrence seen by every pass is posted once."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SweepController:
    def __init__(
        self,
        api: SweepApi,
        kube: Kube,
        metrics: SweepMetrics | None = None,
        *,
        reconcile_workers: int = 2,
        resync_seconds: float = 60.0,
        clock: Callable[[], datetime] = _utcnow,
    ):
        self.api = api
        self.kube = kube
        self.metrics = metrics
        self.clock = clock
        self.resync_seconds = resync_seconds
        self._posted: dict[Key, list[str]] = {}
        self._refused: dict[Key, dict[str, str]] = {}
        self.pool = ReconcilePool(
            self.reconcile,
            concurrency=reconcile_workers,
            name="sweep-worker",
            logger=logger,
            failure_message="sweep pass failed; retrying",
            error_backoff=lambda failures: ERROR_RETRY_SECONDS,
        )

    def start(self) -> None:
        self.pool.start()

    async def stop(self) -> None:
        await self.pool.stop()

    def enqueue(self, key: Key) -> None:
        self.pool.add(key)

    def forget(self, key: Key) -> None:
        self.pool.forget(key)
        self._posted.pop(key, None)
        self._refused.pop(key, None)
        if self.metrics is not None:
            self.metrics.forget(key)

    async def reconcile(self, key: Key) -> float | None:
        """One pass for the sweep `key`; seconds until the next pass, or None when it is gone."""
        namespace, name = key
        body = await self.api.get_sweep(namespace, name)
        if body is None:
            self.forget(key)
            return None
        jobs = await self.api.list_trials(namespace, name)
        now = self.clock()
        refused = dict(self._refused.get(key) or {})
        plan = await asyncio.to_thread(plan_pass, body, jobs, now, refused)
        await self._write_status(key, body, plan)
        for trial in refused:
            self._refused.get(key, {}).pop(trial, None)
        retry_soon = await self._act(key, plan)
        await self._post(key, body, plan.events, now)
        if self.metrics is not None:
            self.metrics.observe(key, plan.status)
        return 0.5 if retry_soon else self.resync_seconds

    async def _write_status(self, key: Key, body: dict[str, Any], plan: Plan) -> None:
        old = {k: v for k, v in (body.get("status") or {}).items() if v is not None}
        new = plan.status
        if new == old:
            return
        patch = {**{k: None for k in old if k not in new}, **new}
        await self.api.patch_sweep_status(key[0], key[1], patch, body["metadata"].get("resourceVersion"))

    async def _act(self, key: Key, plan: Plan) -> bool:
        """Create, delete, suspend; True when a creation was refused (the next pass records it)."""
        namespace = key[0]
        refused = False
        for manifest in plan.create:
            try:
                await self.api.create_trial(manifest)
            except CreateRefused as error:
                self._refused.setdefault(key, {})[manifest["metadata"]["name"]] = str(error)
                refused = True
        for trial in plan.delete:
            await self.kube.delete_finetunejob(namespace, trial.name, trial.uid)
        for name, suspend in plan.suspend.items():
            await self.api.set_trial_suspended(namespace, name, suspend)
        return refused

    async def _post(self, key: Key, body: dict[str, Any], events: list[Event], now: datetime) -> None:
        posted = self._posted.setdefault(key, [])
        for event in events:
            if event.key in posted:
                continue
            await self.kube.post_event(body, event.type, event.reason, event.message, now)
            posted.append(event.key)
            del posted[:-EVENT_MEMORY]
            logger.info(event.message, extra={"namespace": key[0], "job": key[1], "reason": event.reason})
