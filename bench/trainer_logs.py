"""Read the trainer's JSON log lines into step times, checkpoint uploads and commit latencies.

Why pure: the trainer-overhead benchmark classifies each training step as "no upload running",
"while an upload runs" or "the step that wrote a checkpoint locally" from log timestamps alone, and
the recovery benchmark finds a run's first step; both are tested here without training anything.

Log lines (``finetune_trainer.logs``): ``{"time": "2026-01-01T00:00:00.123Z", "msg": ..., "step": ...}``;
``train log`` once per ``loggingSteps``; ``checkpoint committed`` with ``checkpoint_step``, ``bytes``
and ``seconds`` (upload start to manifest written).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` that is a JSON object (library output in between is skipped)."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def timestamp(value: str) -> float:
    """A log ``time`` (ISO 8601, ``Z`` or offset) as seconds since the epoch."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def step_log_times(records: Iterable[dict[str, Any]]) -> dict[int, float]:
    """Step -> time of its ``train log`` line (the first one, should a step be logged twice)."""
    times: dict[int, float] = {}
    for record in records:
        if record.get("msg") == "train log" and "step" in record and "time" in record:
            times.setdefault(int(record["step"]), timestamp(record["time"]))
    return times


def step_durations(times: dict[int, float]) -> dict[int, float]:
    """Step -> seconds since the previous logged step, per step (needs loggingSteps 1 to be exact)."""
    steps = sorted(times)
    return {
        step: (times[step] - times[previous]) / (step - previous)
        for previous, step in itertools.pairwise(steps)
    }


@dataclass(frozen=True)
class Commit:
    step: int
    committed_at: float
    bytes: int
    upload_seconds: float


def commits(records: Iterable[dict[str, Any]]) -> list[Commit]:
    return [
        Commit(
            int(r["checkpoint_step"]),
            timestamp(r["time"]),
            int(r.get("bytes") or 0),
            float(r.get("seconds") or 0),
        )
        for r in records
        if r.get("msg") == "checkpoint committed"
    ]


@dataclass(frozen=True)
class StepClasses:
    without_upload: list[float]
    during_upload: list[float]
    after_save: list[float]
    commit_latency: list[float]


def classify_steps(durations: dict[int, float], times: dict[int, float], found: list[Commit]) -> StepClasses:
    """Sort steps by what ran beside them. A checkpoint of step K is written locally right after step
    K's log line (so step K+1 carries the local save) and uploads until its commit; steps that end
    inside (K+1, commit] ran beside the upload. Commit latency: step K's log line to the commit."""
    after_save: set[int] = set()
    during: set[int] = set()
    latencies = []
    for commit in found:
        after_save.add(commit.step + 1)
        if commit.step in times:
            latencies.append(commit.committed_at - times[commit.step])
        for step, at in times.items():
            if step > commit.step + 1 and at <= commit.committed_at:
                during.add(step)
    return StepClasses(
        without_upload=[d for s, d in durations.items() if s not in during and s not in after_save],
        during_upload=[d for s, d in durations.items() if s in during],
        after_save=[d for s, d in durations.items() if s in after_save],
        commit_latency=latencies,
    )


def first_record(records: Iterable[dict[str, Any]], message: str) -> dict[str, Any] | None:
    return next((r for r in records if r.get("msg") == message), None)
