"""The FineTuneSweep status: trial counts, the best trial, every trial's record (the study's memory).

Apart from the spec models (sweep.py) so that each file holds one concern; sweep.py re-exports them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from finetune_api.base import StatusModel
from finetune_api.status import ConditionStatus

MAX_TRIALS_LIMIT: Final = 200
"""Every trial's record lives in status (the study's only memory); this keeps status small."""

TrialState = Literal["Pending", "Running", "Succeeded", "Pruned", "Failed", "Stopped"]


class SweepCondition(StatusModel):
    """An observation of the sweep (metav1.Condition)."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Aspect observed: Running, Succeeded, Failed or Suspended."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="CamelCase cause of the last transition."
    )
    message: Annotated[str, Field(max_length=32768)] | None = Field(
        default=None, description="Human-readable details."
    )
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class TrialCounts(StatusModel):
    """How many trials are in each state."""

    total: int = Field(default=0, ge=0, description="Trials started or recorded.")
    running: int = Field(default=0, ge=0, description="Trials pending or running.")
    succeeded: int = Field(default=0, ge=0, description="Trials that completed.")
    pruned: int = Field(default=0, ge=0, description="Trials stopped early by the pruner.")
    failed: int = Field(default=0, ge=0, description="Trials that failed or whose spec was invalid.")


class Evaluation(StatusModel):
    """One evaluation of a trial, as seen in its status.progress."""

    evaluation: int = Field(ge=0, description="Evaluation number (the pruner's step).")
    step: int = Field(ge=0, description="Training step of the trial when it was read.")
    value: float = Field(description="The objective metric (best so far for metrics other than loss).")


class TrialRecord(StatusModel):
    """Everything the operator knows about one trial; the list of these is the study."""

    index: int = Field(ge=0, description="Trial number; the FineTuneJob is <sweep>-t<index>.")
    name: str = Field(description="Name of the trial's FineTuneJob.")
    state: TrialState = Field(description="Pending, Running, Succeeded, Pruned, Failed or Stopped.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="The suggested value of each parameter, by path.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    value: float | None = Field(default=None, description="The trial's objective value.")
    step: int | None = Field(default=None, ge=0, description="Training step of the last evaluation seen.")
    evaluations: list[Evaluation] = Field(
        default_factory=list, description="The objective at each evaluation seen (the pruner's input)."
    )
    output: str | None = Field(default=None, description="Where the trial's model is written.")
    message: str | None = Field(default=None, description="Why the trial failed or was pruned.")
    sampler_state: dict[str, Any] = Field(
        default_factory=dict,
        description="Optuna's per-trial bookkeeping (grid point, pruner rungs), kept for restarts.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class BestTrial(StatusModel):
    """The best completed trial so far."""

    name: str | None = Field(default=None, description="Name of the trial's FineTuneJob.")
    index: int | None = Field(default=None, ge=0, description="Trial number.")
    value: float | None = Field(default=None, description="Its objective value.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Its parameter values, by path.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    output: str | None = Field(default=None, description="Where its trained model was written.")


class FineTuneSweepStatus(StatusModel):
    """Observed state of a FineTuneSweep, written by the operator."""

    phase: str | None = Field(
        default=None, description="One-word summary: Running, Suspended, Succeeded or Failed."
    )
    conditions: list[SweepCondition] = Field(
        default_factory=list,
        description="Observations keyed by type (Running, Succeeded, Failed, Suspended).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    trials: TrialCounts | None = Field(default=None, description="Trials by state.")
    trials_summary: str | None = Field(
        default=None, description="'succeeded/total' with pruned and failed counts (printer column)."
    )
    best_trial: BestTrial | None = Field(default=None, description="The best completed trial.")
    history: list[TrialRecord] = Field(
        default_factory=list,
        max_length=MAX_TRIALS_LIMIT,
        description="Every trial with its parameters, state, value and evaluations, in index order.",
    )
    start_time: datetime | None = Field(default=None, description="When the first trial was recorded.")
    completion_time: datetime | None = Field(default=None, description="When the sweep ended.")
