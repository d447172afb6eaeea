"""A de-duplicating work queue of job keys, like client-go's: the heart of "no per-object busy loop".

Watch events and timers only *add a key*; a few workers take keys and reconcile them. A key is never
processed by two workers at once (an add while it is processed marks it dirty and it comes back once
done), bursts of events for one job collapse into one pass, and each key has at most one pending
timer (the earliest wins), so thousands of idle jobs cost a timer each, not a task each.

A pass supersedes the key's pending timer: when a worker takes a key, its timer is cancelled. Every
timer stands for "look again then" (a child's batched event, a requeue, a resync), and the pass that
starts now reads the newest state and returns its own next delay, so the old timer would only run a
pass that finds nothing new (issue 16: those were a third of all passes). An add while the pass
runs still brings the key back once it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class WorkQueue:
    def __init__(self) -> None:
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: Hashable) -> None:
        """Process `key` soon (once, however often it is added meanwhile)."""
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Process `key` after `delay` seconds, unless an earlier timer for it is already pending."""
        loop = asyncio.get_running_loop()
        due = loop.time() + max(0.0, delay)
        pending = self._timers.get(key)
        if pending is not None and not pending.cancelled() and pending.when() <= due:
            return
        if pending is not None:
            pending.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def pending(self, key: Hashable) -> bool:
        """True when `key` is queued or has a timer: a pass for it is coming."""
        return key in self._queued or key in self._timers

    async def get(self) -> Hashable:
        """The next key to process; call `done(key)` when finished with it."""
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        self.forget(key)  # this pass covers whatever the pending timer was for
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def forget(self, key: Hashable) -> None:
        """Drop the pending timer of a key that no longer exists."""
        pending = self._timers.pop(key, None)
        if pending is not None:
            pending.cancel()

    def close(self) -> None:
        for pending in self._timers.values():
            pending.cancel()
        self._timers.clear()
