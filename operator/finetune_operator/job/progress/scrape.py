"""From rank 0's Prometheus text to `status.progress` and `status.checkpoint`.

Why pull, and why here: trainer pods hold no Kubernetes credentials, so the operator reads rank 0's
`/metrics` and writes the status itself. This module is the pure half of that: parsing the
trainer's exposition text into a sample, and folding a sample into the previous progress (percent,
a smoothed step rate and the ETA). The HTTP scrape and the timer live in `poller`. Series names
and the checkpoint layout are the trainer's, from `finetune_api.contract` (docs/architecture.md,
"Progress is pulled").

The step rate is measured by the operator between two scrapes (steps / seconds) rather than derived
from samples per second, because only the former already accounts for gradient accumulation,
world size and evaluation pauses. It is smoothed (exponential moving average) so a single slow
scrape does not make the ETA jump; it resets when the step goes backwards (a new attempt resumed
from an earlier checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from finetune_api import contract as c

PREFIX = c.METRIC_PREFIX
RATE_SMOOTHING = 0.3  # weight of the newest step-rate measurement in the moving average


@dataclass(frozen=True)
class TrainerSample:
    """The trainer series the operator uses, as read in one scrape (None: not exported yet)."""

    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    best_metric: float | None = None
    learning_rate: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    checkpoint_step: int | None = None
    checkpoint_time: datetime | None = None
    eval_metrics: tuple[tuple[str, float], ...] = ()
    non_finite: tuple[str, ...] = ()
    """Series that read NaN or ±Inf (a diverged loss): dropped from the sample, named here."""


def parse_trainer_metrics(text: str) -> TrainerSample:
    """Parse Prometheus exposition text from the trainer; unknown series are ignored.

    Non-finite values (NaN, ±Inf) are dropped and named in `non_finite`.
    A gauge that was never set by the trainer is reported as absent rather than 0 where 0 would
    mislead (losses, the checkpoint): the trainer leaves them unset until it has a value, and a
    value of exactly 0 for `checkpoint_last_step` means "no checkpoint committed yet".
    """
    values: dict[str, float] = {}
    eval_metrics: list[tuple[str, float]] = []
    non_finite: list[str] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith(PREFIX):
                continue
            name = sample.name.removeprefix(PREFIX)
            if not math.isfinite(sample.value):
                # NaN/Inf cannot go into a JSON status (the API server refuses the whole patch,
                # issue 13 item 7): the value is unknown, and the controller warns once.
                non_finite.append(
                    name if name != "eval_metric" else f"eval_metric{{{sample.labels.get('metric')}}}"
                )
                continue
            if name == c.METRIC_EVAL_METRIC and c.METRIC_EVAL_METRIC_LABEL in sample.labels:
                eval_metrics.append((sample.labels[c.METRIC_EVAL_METRIC_LABEL], float(sample.value)))
            elif not sample.labels:
                values[name] = float(sample.value)

    def integer(name: str) -> int | None:
        return int(values[name]) if name in values else None

    checkpoint_step = integer(c.METRIC_CHECKPOINT_LAST_STEP)
    checkpoint_ts = values.get(c.METRIC_CHECKPOINT_LAST_TIMESTAMP)
    has_checkpoint = bool(checkpoint_step) and bool(checkpoint_ts)
    return TrainerSample(
        step=integer(c.METRIC_STEP),
        total_steps=integer(c.METRIC_TOTAL_STEPS) or None,
        epoch=values.get(c.METRIC_EPOCH),
        train_loss=_nonzero(values.get(c.METRIC_TRAIN_LOSS)),
        eval_loss=_nonzero(values.get(c.METRIC_EVAL_LOSS)),
        best_metric=_nonzero(values.get(c.METRIC_BEST_METRIC)),
        learning_rate=values.get(c.METRIC_LEARNING_RATE),
        samples_per_second=values.get(c.METRIC_SAMPLES_PER_SECOND),
        tokens_per_second=values.get(c.METRIC_TOKENS_PER_SECOND),
        checkpoint_step=checkpoint_step if has_checkpoint else None,
        checkpoint_time=datetime.fromtimestamp(checkpoint_ts, UTC)
        if has_checkpoint and checkpoint_ts
        else None,
        eval_metrics=tuple(sorted(eval_metrics)),
        non_finite=tuple(sorted(set(non_finite))),
    )


def _nonzero(value: float | None) -> float | None:
    """Gauges the trainer has not set yet read as 0; report them as unknown instead."""
    return None if value is None or value == 0.0 else value


@dataclass(frozen=True)
class ProgressPoint:
    """What the operator remembers between scrapes of one job: enough to measure the step rate."""

    step: int
    time: datetime
    steps_per_second: float | None = None


def step_rate(previous: ProgressPoint | None, step: int, now: datetime) -> float | None:
    """Smoothed steps per second from the previous scrape to this one; None until measurable."""
    if previous is None or step < previous.step:
        return None
    elapsed = (now - previous.time).total_seconds()
    if elapsed <= 0:
        return previous.steps_per_second
    measured = (step - previous.step) / elapsed
    if previous.steps_per_second is None:
        return measured if step > previous.step else None
    return RATE_SMOOTHING * measured + (1 - RATE_SMOOTHING) * previous.steps_per_second


def percent_done(step: int | None, total_steps: int | None) -> float | None:
    """step / total in percent, clamped to [0, 100], rounded to one decimal."""
    if step is None or not total_steps:
        return None
    return round(min(100.0, max(0.0, 100.0 * step / total_steps)), 1)


def eta_seconds(step: int | None, total_steps: int | None, rate: float | None) -> int | None:
    """Seconds left at the current step rate; None while the rate is unknown or zero."""
    if step is None or not total_steps or not rate or rate <= 0:
        return None
    return max(0, round((total_steps - step) / rate))


def progress_fields(sample: TrainerSample, rate: float | None, now: datetime) -> dict[str, object]:
    """`status.progress` (camelCase, JSON-ready) from one sample and the smoothed rate."""
    fields: dict[str, object] = {
        "step": sample.step,
        "totalSteps": sample.total_steps,
        "epoch": None if sample.epoch is None else round(sample.epoch, 4),
        "percent": percent_done(sample.step, sample.total_steps),
        "etaSeconds": eta_seconds(sample.step, sample.total_steps, rate),
        "trainLoss": _rounded(sample.train_loss),
        "evalLoss": _rounded(sample.eval_loss),
        "bestMetric": _rounded(sample.best_metric),
        "learningRate": sample.learning_rate,
        "samplesPerSecond": _rounded(sample.samples_per_second),
        "tokensPerSecond": _rounded(sample.tokens_per_second),
        "updateTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return {key: value for key, value in fields.items() if value is not None}


def checkpoint_fields(sample: TrainerSample, checkpoint_uri: str) -> dict[str, object] | None:
    """`status.checkpoint` for the last committed checkpoint the trainer reports, if any."""
    if sample.checkpoint_step is None or sample.checkpoint_time is None:
        return None
    return {
        "uri": c.checkpoint_uri(checkpoint_uri, sample.checkpoint_step),
        "step": sample.checkpoint_step,
        "time": sample.checkpoint_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
