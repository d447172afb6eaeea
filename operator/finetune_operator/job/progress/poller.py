"""Pull rank 0's metrics on a timer, with backoff while it is unreachable (docs/architecture.md
"Progress is pulled").

Why a separate object: scraping is I/O with its own cadence (every `interval` seconds per running
job, backing off exponentially while the endpoint times out or keeps refusing; a pod whose
endpoint has never answered is retried every interval for a grace period first: it is starting),
and what it learns must survive between reconcile passes: the last sample, the smoothed step rate,
and when the step last advanced (the Stalled rule). The reconcile pass asks
`refresh()` (cheap when not due) and reads `latest()`; nothing here writes to the API.

State is in memory only. After an operator restart the first scrape re-establishes it; the stall
clock then starts from that scrape, which can only delay a Stalled condition, never fake one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from finetune_operator.job.progress.scrape import (
    ProgressPoint,
    TrainerSample,
    parse_trainer_metrics,
    step_rate,
)

logger = logging.getLogger("finetune_operator.progress")

Key = tuple[str, str]  # (namespace, name)
Fetch = Callable[[str, float], Awaitable[str]]


MAX_BODY_BYTES = 1 << 20
"""The trainer's exposition is a few KiB; anything past 1 MiB is not a trainer and is not read."""


class ScrapeRefused(Exception):
    """The endpoint answered, but not with something the operator will read (redirect, error, too big)."""


async def fetch_metrics_text(url: str, timeout_seconds: float, max_bytes: int = MAX_BODY_BYTES) -> str:
    """GET a Prometheus endpoint and return its text; raises on any transport or HTTP error.

    The URL is a pod IP that a tenant's container answers, so the answer is untrusted (issue 13
    item 5): redirects are never followed (a redirect to the cloud metadata service or to an
    in-cluster API would make the operator fetch it with its own network position), and the body
    is read in chunks and abandoned past `max_bytes`, so a pod streaming forever costs at most
    1 MiB and the timeout, never the operator's memory.
    """
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise ScrapeRefused(
                f"HTTP {response.status} from {url} (only 200 is read; redirects are not followed)"
            )
        if (response.content_length or 0) > max_bytes:
            raise ScrapeRefused(f"{url} announced {response.content_length} bytes, more than {max_bytes}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body.extend(chunk)
            if len(body) > max_bytes:
                raise ScrapeRefused(f"{url} sent more than {max_bytes} bytes; not a trainer's metrics")
        return body.decode(response.get_encoding() if response.charset else "utf-8", errors="replace")


def metrics_url(pod_ip: str, port: int) -> str:
    """rank 0's metrics URL; an IPv6 pod IP goes in brackets."""
    host = f"[{pod_ip}]" if ":" in pod_ip and not pod_ip.startswith("[") else pod_ip
    return f"http://{host}:{port}/metrics"


def backoff_delay(failures: int, interval: float, cap: float) -> float:
    """Seconds to wait after `failures` consecutive failed scrapes: interval·2^(n-1), capped."""
    if failures <= 0:
        return interval
    return min(cap, interval * 2 ** (failures - 1))


def starting_up(refused_since: datetime, now: datetime, grace_seconds: float) -> bool:
    """A pod whose endpoint has never answered and has refused connections for less than the grace
    (the backoff cap) is taken to be starting: its trainer opens the port only after importing torch
    and reading its spec, tens of seconds on a busy node. Such refusals are retried every interval
    instead of backing off: a refused connect costs next to nothing, and backing off there made
    the first scrape of a short training land after it had ended (its progress, and a sweep's
    pruning, never seen). A timeout, or a pod that keeps refusing past the grace, backs off."""
    return (now - refused_since).total_seconds() < grace_seconds


@dataclass
class JobProgress:
    """What the poller knows about one job."""

    sample: TrainerSample | None = None
    point: ProgressPoint | None = None
    step_changed_at: datetime | None = None
    next_poll: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    url: str | None = None
    answered: bool = False
    """The current `url` has answered at least once (its trainer's endpoint is up)."""
    refused_since: datetime | None = None
    """First refused connect to the current `url` while it has never answered."""
    scraped_at: datetime | None = None
    """When `sample` was read: status.progress.updateTime, so a pass without a new scrape writes nothing."""

    @property
    def steps_per_second(self) -> float | None:
        return None if self.point is None else self.point.steps_per_second


class ProgressPoller:
    """Per-job scrape schedule and latest progress; shared by all reconcile workers."""

    def __init__(
        self,
        interval_seconds: float,
        max_backoff_seconds: float,
        timeout_seconds: float = 3.0,
        fetch: Fetch = fetch_metrics_text,
    ) -> None:
        self.interval = interval_seconds
        self.max_backoff = max(max_backoff_seconds, interval_seconds)
        self.timeout = timeout_seconds
        self._fetch = fetch
        self._jobs: dict[Key, JobProgress] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def latest(self, key: Key) -> JobProgress | None:
        return self._jobs.get(key)

    def forget(self, key: Key) -> None:
        """Drop a job's state (deleted, or finished and no longer polled)."""
        self._jobs.pop(key, None)
        self._locks.pop(key, None)

    def seconds_until_due(self, key: Key, now: datetime) -> float:
        """How long the reconcile loop may sleep before this job's next scrape is due."""
        state = self._jobs.get(key)
        if state is None or state.next_poll is None:
            return 0.0
        return max(0.0, (state.next_poll - now).total_seconds())

    async def refresh(self, key: Key, url: str, now: datetime) -> JobProgress:
        """Scrape `url` if due (or if the pod changed); return the job's progress state."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            state = self._jobs.setdefault(key, JobProgress())
            if state.url != url:  # a new attempt's rank 0: scrape now, keep the rate history
                state.url, state.next_poll, state.failures = url, None, 0
                state.answered, state.refused_since = False, None
            if state.next_poll is not None and now < state.next_poll:
                return state
            try:
                text = await self._fetch(url, self.timeout)
                # Parsing is CPU work on untrusted text: off the event loop, inside this error boundary
                # (a body that does not parse counts as one failed scrape, never as a failed pass).
                sample = await asyncio.to_thread(parse_trainer_metrics, text)
            except Exception as error:  # refused, timeout, HTTP error, garbage: all "unreachable"
                state.failures += 1
                state.last_error = f"{type(error).__name__}: {error}"[:300]
                delay = backoff_delay(state.failures, self.interval, self.max_backoff)
                if isinstance(error, aiohttp.ClientConnectorError) and not state.answered:
                    state.refused_since = state.refused_since or now
                    if starting_up(state.refused_since, now, self.max_backoff):
                        delay = self.interval
                state.next_poll = now + timedelta(seconds=delay)
                logger.debug("metrics unreachable", extra={"fields": {"url": url, "retry_in": delay}})
                return state
            self._absorb(state, sample, now)
            state.failures, state.last_error, state.scraped_at = 0, None, now
            state.answered, state.refused_since = True, None
            state.next_poll = now + timedelta(seconds=self.interval)
            return state

    @staticmethod
    def _absorb(state: JobProgress, sample: TrainerSample, now: datetime) -> None:
        """Fold a new sample into the state: rate, and when the step last advanced."""
        if sample.step is not None:
            previous = state.point
            rate = step_rate(previous, sample.step, now)
            advanced = previous is None or sample.step != previous.step
            if advanced or state.step_changed_at is None:
                state.step_changed_at = now
            if previous is None or advanced or sample.step < previous.step:
                state.point = ProgressPoint(step=sample.step, time=now, steps_per_second=rate)
        state.sample = sample
