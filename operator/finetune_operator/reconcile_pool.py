"""Reconcile concurrency: the tasks that drain a WorkQueue, one mechanism for every controller.

Every controller (FineTuneJob, FineTuneSchedule, FineTuneSweep) is "a queue of (namespace, name) keys
and a `reconcile(key) -> seconds until the next pass, or None` function". What runs the passes is the
same for all and lives here: `concurrency` tasks (`--reconcile-workers`; not to be confused with a
job's spec.resources.workers, its training pods), the requeue after the returned delay, a conflict (409 on
a resourceVersion-guarded write) retried at once, and any other error retried after a per-key
backoff. Each controller keeps only its own pass, its own backoff rule and, where it has them, its
own metrics (through `on_pass`). Also here: the event-to-queue routing the Kopf handlers share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from finetune_operator.kube import Conflict
from finetune_operator.workqueue import WorkQueue

Key = tuple[str, str]  # (namespace, name)
Reconcile = Callable[[Key], Awaitable[float | None]]
PassRecorder = Callable[[str, float], None]
"""Called after every pass with its result ("ok", "conflict" or "error") and its duration in seconds."""


def exponential_error_backoff(failures: int) -> float:
    """0.5 s doubled per consecutive failure of a key, at most 60 s."""
    return min(60.0, 0.5 * 2 ** min(failures, 7))


class ReconcilePool:
    """`concurrency` tasks that take keys from a de-duplicating queue and run `reconcile` on each."""

    def __init__(
        self,
        reconcile: Reconcile,
        *,
        concurrency: int,
        name: str,
        logger: logging.Logger,
        failure_message: str,
        error_backoff: Callable[[int], float] = exponential_error_backoff,
        on_pass: PassRecorder | None = None,
    ):
        self.queue = WorkQueue()
        self._reconcile = reconcile
        self._concurrency = concurrency
        self._name = name
        self._logger = logger
        self._failure_message = failure_message
        self._error_backoff = error_backoff
        self._on_pass = on_pass
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for number in range(self._concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self._name}-{number}"))

    async def stop(self) -> None:
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def add(self, key: Key) -> None:
        self.queue.add(key)

    def forget(self, key: Key) -> None:
        """Drop a key that no longer exists: its pending timer and its failure count."""
        self.queue.forget(key)
        self._failures.pop(key, None)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                delay = await self.run_pass(key)
            finally:
                self.queue.done(key)
            if delay is not None:
                self.queue.add_after(key, delay)

    async def run_pass(self, key: Key) -> float | None:
        """One pass for `key`: seconds until the next one (the backoff after an error), or None."""
        started = time.perf_counter()
        result = "error"
        try:
            delay = await self._reconcile(key)
        except Conflict:
            result = "conflict"
            return 0.0
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            self._logger.exception(
                self._failure_message, extra={"namespace": key[0], "job": key[1], "result": "error"}
            )
            return self._error_backoff(failures)
        else:
            self._failures.pop(key, None)
            result = "ok"
            return delay
        finally:
            if self._on_pass is not None:
                self._on_pass(result, time.perf_counter() - started)


class KeyedController(Protocol):
    def enqueue(self, key: Key) -> None: ...

    def forget(self, key: Key) -> None: ...


def route_watch_event(controller: KeyedController | None, event: dict[str, Any], key: Key) -> None:
    """A watch event of the controller's own kind: DELETED forgets the key, anything else queues it."""
    if controller is None:
        return
    if event.get("type") == "DELETED":
        controller.forget(key)
    else:
        controller.enqueue(key)
