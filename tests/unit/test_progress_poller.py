"""The progress poller's schedule: scrape when due, back off while unreachable, track the step."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from finetune_operator.job.progress.poller import (
    ProgressPoller,
    backoff_delay,
    fetch_metrics_text,
    metrics_url,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
KEY = ("ns", "job")
URL = metrics_url("127.0.1.5", 9090)


class Endpoint:
    """Stands in for the network hop only: returns the queued exposition texts or raises."""

    def __init__(self, *responses: str | Exception) -> None:
        self.responses = list(responses)
        self.calls = 0

    async def __call__(self, url: str, timeout_seconds: float) -> str:
        self.calls += 1
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("failures", "expected"), [(0, 5), (1, 5), (2, 10), (3, 20), (4, 40), (9, 60)])
def test_backoff_delay(failures: int, expected: float) -> None:
    assert backoff_delay(failures, interval=5, cap=60) == expected


def test_scrapes_when_due_and_backs_off_while_unreachable() -> None:
    endpoint = Endpoint(ConnectionRefusedError("refused"), OSError("timeout"), "finetune_trainer_step 4\n")
    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=60, fetch=endpoint)

    async def scenario() -> None:
        state = await poller.refresh(KEY, URL, at(0))
        assert state.failures == 1 and state.next_poll == at(5)
        await poller.refresh(KEY, URL, at(3))  # not due: no request
        assert endpoint.calls == 1
        state = await poller.refresh(KEY, URL, at(5))
        assert state.failures == 2 and state.next_poll == at(15)
        assert poller.seconds_until_due(KEY, at(10)) == 5
        state = await poller.refresh(KEY, URL, at(15))
        assert state.failures == 0 and state.sample is not None and state.sample.step == 4

    asyncio.run(scenario())


def test_step_rate_and_stall_clock() -> None:
    texts = [f"finetune_trainer_step {s}\nfinetune_trainer_total_steps 100\n" for s in (10, 20, 20, 30)]
    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=60, fetch=Endpoint(*texts))

    async def scenario() -> None:
        state = await poller.refresh(KEY, URL, at(0))
        assert state.step_changed_at == at(0) and state.steps_per_second is None
        state = await poller.refresh(KEY, URL, at(5))
        assert state.steps_per_second == pytest.approx(2.0)
        state = await poller.refresh(KEY, URL, at(10))  # no progress: stall clock keeps its time
        assert state.step_changed_at == at(5)
        state = await poller.refresh(KEY, URL, at(15))
        assert state.step_changed_at == at(15)
        assert state.steps_per_second == pytest.approx(0.3 * 1.0 + 0.7 * 2.0)

    asyncio.run(scenario())


def test_new_rank0_address_is_scraped_at_once() -> None:
    endpoint = Endpoint(OSError("down"), "finetune_trainer_step 1\n")
    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=60, fetch=endpoint)

    async def scenario() -> None:
        await poller.refresh(KEY, URL, at(0))
        state = await poller.refresh(KEY, metrics_url("127.0.1.9", 9090), at(1))
        assert endpoint.calls == 2 and state.sample is not None
        poller.forget(KEY)
        assert poller.latest(KEY) is None

    asyncio.run(scenario())


class RefusingThenUp:
    """Refuses connections for real (nothing listens on 127.0.0.1:1) `refusals` times, then answers."""

    def __init__(self, refusals: int, then: str | Exception = "finetune_trainer_step 1\n") -> None:
        self.refusals = refusals
        self.then = then
        self.calls = 0

    async def __call__(self, url: str, timeout_seconds: float) -> str:
        self.calls += 1
        if self.calls <= self.refusals:
            return await fetch_metrics_text("http://127.0.0.1:1/metrics", timeout_seconds)
        if isinstance(self.then, Exception):
            raise self.then
        return self.then


def test_a_starting_trainer_is_retried_every_interval_until_the_grace_ends() -> None:
    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=20, fetch=RefusingThenUp(refusals=6))

    async def scenario() -> None:
        delays = []
        now = 0.0
        for _ in range(6):
            state = await poller.refresh(KEY, URL, at(now))
            delays.append((state.next_poll - at(now)).total_seconds())
            now = (state.next_poll - T0).total_seconds()
        # refused at 0, 5, 10, 15 (inside the 20 s grace: every interval), then backing off
        assert delays[:4] == [5, 5, 5, 5] and delays[4] > 5
        state = await poller.refresh(KEY, URL, at(now))
        assert state.failures == 0 and state.answered

    asyncio.run(scenario())


def test_refusals_after_the_endpoint_answered_back_off() -> None:
    endpoint = RefusingThenUp(refusals=0)
    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=60, fetch=endpoint)

    async def scenario() -> None:
        await poller.refresh(KEY, URL, at(0))
        endpoint.refusals = endpoint.calls + 2  # the trainer went away
        state = await poller.refresh(KEY, URL, at(5))
        assert state.next_poll == at(10)
        state = await poller.refresh(KEY, URL, at(10))
        assert state.next_poll == at(20)  # backing off: it had answered before

    asyncio.run(scenario())
