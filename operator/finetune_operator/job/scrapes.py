"""Rank 0's metrics read between passes: a scrape queues a pass only when it learned something.

Why (issue 16): the next scrape of a running job used to be one of the times a pass was scheduled
for, so every running job cost a full pass per progress interval (and, while its metrics were
unreachable, one per backoff step) even when the scrape found nothing new. Now the controller
hands the scrape's due time here; a timer scrapes (through the same ProgressPoller, so its
schedule, backoff and untrusted-body rules are unchanged) and queues the job only when what a
pass reads of the progress changed: a new sample, or the endpoint turning reachable or
unreachable. A pass that runs anyway still scrapes when due (observe_progress), and the Stalled
rule keeps its own requeue in the decision.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Hashable

from finetune_operator.job.progress.poller import JobProgress, ProgressPoller

logger = logging.getLogger("finetune_operator.progress")

Key = tuple[str, str]


def progress_fingerprint(state: JobProgress | None) -> Hashable:
    """What a pass reads of the poller's state: the sample and whether it is fresh."""
    if state is None:
        return (None, False)
    return (state.sample, state.failures == 0 and state.sample is not None)


class ScrapeTimers:
    """One pending scrape timer per running job, at most."""

    def __init__(
        self,
        poller: ProgressPoller,
        enqueue: Callable[[Key], None],
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.poller = poller
        self.enqueue = enqueue
        self.clock = clock
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.scrapes = 0
        """Scrapes run from a timer (for tests and logs)."""

    def schedule(self, key: Key, url: str, delay: float) -> None:
        """Scrape `url` for `key` in `delay` seconds (replacing the pending timer)."""
        self.cancel(key)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(max(0.0, delay), self._start, key, url)

    def cancel(self, key: Key) -> None:
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending.cancel()

    def stop(self) -> None:
        for pending in self._timers.values():
            pending.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    def _start(self, key: Key, url: str) -> None:
        self._timers.pop(key, None)
        task = asyncio.create_task(self._scrape(key, url), name=f"scrape-{key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scrape(self, key: Key, url: str) -> None:
        before = progress_fingerprint(self.poller.latest(key))
        try:
            state = await self.poller.refresh(key, url, self.clock())
        except Exception:  # the poller turns scrape errors into failures; anything else: let a pass look
            logger.exception("scrape failed", extra={"namespace": key[0], "job": key[1]})
            self.enqueue(key)
            return
        self.scrapes += 1
        if progress_fingerprint(state) != before:
            self.enqueue(key)
        elif self.poller.latest(key) is not None:  # a finished or deleted job is forgotten there
            self.schedule(key, url, self.poller.seconds_until_due(key, self.clock()) + 0.05)
