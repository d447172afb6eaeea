"""The generic worker pool: requeue after the pass's delay, conflicts at once, errors with backoff."""

from __future__ import annotations

import asyncio
import logging

from finetune_operator.kube import Conflict
from finetune_operator.reconcile_pool import ReconcilePool, exponential_error_backoff, route_watch_event

KEY = ("ns", "job")


def _pool(reconcile, recorded):
    return ReconcilePool(
        reconcile,
        concurrency=1,
        name="test-worker",
        logger=logging.getLogger("test"),
        failure_message="pass failed",
        on_pass=lambda result, seconds: recorded.append(result),
    )


def test_results_and_delays_of_one_pass():
    outcomes = [7.0, Conflict("moved"), RuntimeError("boom"), RuntimeError("boom"), 3.0, RuntimeError("x")]

    async def reconcile(key):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def scenario():
        recorded: list[str] = []
        pool = _pool(reconcile, recorded)
        delays = [await pool.run_pass(KEY) for _ in range(6)]
        return delays, recorded

    delays, recorded = asyncio.run(scenario())
    assert recorded == ["ok", "conflict", "error", "error", "ok", "error"]
    # consecutive errors back off further; a success resets the count
    assert delays == [7.0, 0.0, 1.0, 2.0, 3.0, 1.0]


def test_exponential_error_backoff_is_capped():
    assert [exponential_error_backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert exponential_error_backoff(50) == 60.0


def test_workers_requeue_a_key_after_its_delay_until_it_is_gone():
    async def scenario():
        passes: list[tuple[str, str]] = []
        finished = asyncio.Event()

        async def reconcile(key):
            passes.append(key)
            if len(passes) == 3:
                finished.set()
                return None
            return 0.0

        pool = _pool(reconcile, [])
        pool.start()
        pool.add(KEY)
        await asyncio.wait_for(finished.wait(), 5)
        await pool.stop()
        return passes

    assert asyncio.run(scenario()) == [KEY, KEY, KEY]


class _Recorder:
    def __init__(self):
        self.calls: list[tuple[str, tuple[str, str]]] = []

    def enqueue(self, key):
        self.calls.append(("enqueue", key))

    def forget(self, key):
        self.calls.append(("forget", key))


def test_watch_events_enqueue_and_deletions_forget():
    controller = _Recorder()
    route_watch_event(controller, {"type": "MODIFIED"}, KEY)
    route_watch_event(controller, {"type": "DELETED"}, KEY)
    route_watch_event(None, {"type": "ADDED"}, KEY)  # before start-up: ignored
    assert controller.calls == [("enqueue", KEY), ("forget", KEY)]
