"""The FineTuneJob status: written only by the operator, read by users, dashboards and GitOps tools.

Follows the Kubernetes API conventions: a list of conditions keyed by type, `observedGeneration`,
durations as integer `...Seconds`. `phase` is a one-word summary for `kubectl get` only; decisions
belong on conditions. Unknown keys are ignored on read so an older client can read a newer status.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from finetune_api.base import StatusModel


class Phase(StrEnum):
    """One-word summary of where the job is (printer column)."""

    PENDING = "Pending"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    """Condition types the operator sets."""

    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STALLED = "Stalled"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """An observation of one aspect of the job (metav1.Condition)."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Aspect observed: Created, Running, Restarting, Suspended, Succeeded, Failed or Stalled."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="CamelCase machine-readable cause of the last transition."
    )
    message: Annotated[str, Field(max_length=32768)] | None = Field(
        default=None, description="Human-readable details, e.g. the trainer's termination message."
    )
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class Restarts(StatusModel):
    """How often the gang was restarted, by cause."""

    total: int = Field(default=0, ge=0, description="All gang restarts.")
    preemptions: int = Field(
        default=0,
        ge=0,
        description="Restarts after preemption, eviction, node loss or suspension (not counted).",
    )
    failures: int = Field(
        default=0, ge=0, description="Restarts after retryable failures (counted against maxRestarts)."
    )


class WorkerStatus(StatusModel):
    """Summary of one worker pod of the current attempt."""

    index: int = Field(ge=0, description="Completion index (torchrun node rank).")
    pod: str | None = Field(default=None, description="Pod name.")
    node: str | None = Field(default=None, description="Node the pod runs on.")
    phase: str | None = Field(
        default=None, description="Pod phase: Pending, Running, Succeeded, Failed or Unknown."
    )
    exit_code: int | None = Field(
        default=None, description="Exit code of the trainer container once terminated."
    )
    reason: str | None = Field(default=None, description="Why the container terminated or waits.")


class Progress(StatusModel):
    """Live training progress, read from rank 0's metrics by the operator."""

    step: int | None = Field(default=None, ge=0, description="Optimizer steps done.")
    total_steps: int | None = Field(default=None, ge=0, description="Optimizer steps the run will take.")
    epoch: float | None = Field(default=None, ge=0.0, description="Fractional epoch reached.")
    percent: float | None = Field(default=None, ge=0.0, le=100.0, description="step / totalSteps in percent.")
    eta_seconds: int | None = Field(default=None, ge=0, description="Estimated seconds until training ends.")
    train_loss: float | None = Field(default=None, description="Latest training loss.")
    eval_loss: float | None = Field(default=None, description="Latest evaluation loss.")
    best_metric: float | None = Field(
        default=None, description="Best value of training.evaluation.metric so far."
    )
    learning_rate: float | None = Field(default=None, ge=0.0, description="Current learning rate.")
    samples_per_second: float | None = Field(
        default=None, ge=0.0, description="Training throughput in examples."
    )
    tokens_per_second: float | None = Field(
        default=None, ge=0.0, description="Training throughput in tokens."
    )
    update_time: datetime | None = Field(default=None, description="When these numbers were read.")


class CheckpointStatus(StatusModel):
    """The last committed checkpoint (it has a valid manifest)."""

    uri: str | None = Field(default=None, description="URI of the checkpoint directory.")
    step: int | None = Field(default=None, ge=0, description="Optimizer step it was saved at.")
    time: datetime | None = Field(default=None, description="When it was committed.")


class OutputStatus(StatusModel):
    """The final model."""

    uri: str | None = Field(default=None, description="Where the final model was written.")


class FineTuneJobStatus(StatusModel):
    """Observed state of a FineTuneJob."""

    phase: Phase | None = Field(
        default=None, description="One-word summary: " + ", ".join(p.value for p in Phase) + "."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Observations keyed by type (Created, Running, Restarting, Suspended, Succeeded, Failed, "
            "Stalled)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation of the spec the status was computed from."
    )
    start_time: datetime | None = Field(default=None, description="When the first attempt started.")
    completion_time: datetime | None = Field(default=None, description="When the job succeeded or failed.")
    attempt: int | None = Field(
        default=None, ge=0, description="Current attempt number (child Job <name>-a<attempt>)."
    )
    restarts: Restarts | None = Field(default=None, description="Gang restarts by cause.")
    workers: list[WorkerStatus] = Field(
        default_factory=list,
        description="Worker pods of the current attempt.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["index"]},
    )
    progress: Progress | None = Field(default=None, description="Live training progress.")
    checkpoint: CheckpointStatus | None = Field(default=None, description="Last committed checkpoint.")
    output: OutputStatus | None = Field(default=None, description="The final model once written.")
    message: str | None = Field(
        default=None, description="Short human-readable summary of the current state."
    )
