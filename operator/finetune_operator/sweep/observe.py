"""What a trial's FineTuneJob says about the trial: its state, its latest evaluation, its value.

Pure functions over the FineTuneJob as stored. The sweep adds nothing to the trainer: the FineTuneJob
controller already scrapes each trial's rank 0 and writes `status.progress` (step, epoch, evalLoss,
bestMetric) and, on success, the trainer's exact final numbers; this module reads only that.

Evaluations are numbered from the trial's own evaluation schedule (the n-th evaluation is Optuna's
step n), so trials with different batch sizes or evaluation intervals are compared evaluation by
evaluation. The status shows the step the trainer has reached, which can be a little past the last
evaluation, or exactly at an evaluation that is still running: the value read while the step is
within evaluation n's interval replaces the previous reading for n, so the last reading before the
next evaluation wins.

Which number is the objective: `evalLoss` for loss, exp(evalLoss) for perplexity (both the latest
evaluation); for other metrics `bestMetric`, the best value so far, since the status carries no
other reading of them (a best-so-far curve is what Optuna's pruners compare anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from finetune_api import FineTuneJobSpec
from finetune_operator import conditions as cond

TrialPhase = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class Reading:
    """One evaluation of a trial: its number, the training step it was read at, the objective."""

    evaluation: int
    step: int
    value: float


@dataclass(frozen=True)
class TrialView:
    """A trial as its FineTuneJob shows it."""

    phase: TrialPhase
    reading: Reading | None = None
    value: float | None = None
    output: str | None = None
    message: str | None = None


def objective_value(progress: dict[str, Any], metric: str) -> float | None:
    """The objective from status.progress (see the module docstring); None when not reported yet."""
    if metric == "loss":
        value = progress.get("evalLoss")
    elif metric == "perplexity":
        loss = progress.get("evalLoss")
        value = None if loss is None else math.exp(min(float(loss), 700.0))
    else:
        value = progress.get("bestMetric")
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def evaluation_number(progress: dict[str, Any], spec: FineTuneJobSpec) -> int:
    """How many evaluations the trial has reached (0: none yet), from its step or epoch."""
    evaluation = spec.training.evaluation
    if evaluation.strategy == "steps" and evaluation.every_steps:
        return int(progress.get("step") or 0) // evaluation.every_steps
    if evaluation.strategy == "epoch":
        return int(float(progress.get("epoch") or 0.0) + 1e-6)
    return 0


def final_evaluation_number(progress: dict[str, Any], spec: FineTuneJobSpec) -> int:
    """The number of the trial's last evaluation once it has finished (at least 1)."""
    evaluation = spec.training.evaluation
    total = int(progress.get("totalSteps") or progress.get("step") or 0)
    if evaluation.strategy == "steps" and evaluation.every_steps:
        return max(1, total // evaluation.every_steps)
    if evaluation.strategy == "epoch":
        return max(1, round(float(progress.get("epoch") or spec.training.epochs)))
    return 1


def view_trial(job: dict[str, Any], spec: FineTuneJobSpec, metric: str) -> TrialView:
    """The trial's phase, its newest reading while running, its final value once succeeded."""
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    progress = status.get("progress") or {}
    value = objective_value(progress, metric)
    output = (status.get("output") or {}).get("uri") or spec.output.uri
    if cond.is_true(conditions, cond.SUCCEEDED):
        reading = None
        if value is not None:
            reading = Reading(final_evaluation_number(progress, spec), int(progress.get("step") or 0), value)
        return TrialView("succeeded", reading=reading, value=value, output=output)
    if cond.is_true(conditions, cond.FAILED):
        failed = cond.get(conditions, cond.FAILED) or {}
        message = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or 'the trial failed'}"
        return TrialView("failed", message=message, output=output)
    number = evaluation_number(progress, spec)
    reading = None
    if number >= 1 and value is not None:
        reading = Reading(number, int(progress.get("step") or 0), value)
    return TrialView("running", reading=reading, output=output)
