"""The vocabulary of a reconcile pass: what was observed, what to do, and what to tell.

Kept apart from the decision logic (reconcile.py) so the controller, the tests and the decision
code share these plain types without the decision rules in the way.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Observed:
    """What exists for one FineTuneJob, as read from the API in this pass."""

    service_exists: bool = False
    jobs: Mapping[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Attempt number -> that attempt's batch/v1 Job."""
    pods: Mapping[int, Sequence[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """Attempt number -> the pods carrying that attempt's label."""
    progress_step: int | None = None
    """Training step from rank 0's metrics (issue 6); None when unknown."""
    step_changed_at: datetime.datetime | None = None
    """When progress_step last advanced; None when unknown."""
    progress: Mapping[str, Any] | None = None
    """status.progress fields from this pass's scrape of rank 0 (camelCase); None: no fresh scrape."""
    checkpoint: Mapping[str, Any] | None = None
    """status.checkpoint of the last checkpoint rank 0 reports committed; None when unknown."""
    checkpoint_event_due: bool = True
    """False while the CheckpointCommitted event is rate-limited."""
    child_rejected: str | None = None
    """The API's message when it refused to create a child for good (a 4xx; see job/policy.py)."""
    queue_words: tuple[str, str] | None = None
    """Kueue's (reason, message) for the queued current attempt, from its Workload (job/kueue.py)."""


@dataclasses.dataclass(frozen=True)
class CreateService:
    manifest: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CreateConfigMap:
    """The trainer's spec file (created before the attempt's Job, which mounts it)."""

    manifest: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DeleteConfigMap:
    """Tidy up the spec file once the job has finished (it is garbage-collected with the job anyway)."""

    name: str


@dataclasses.dataclass(frozen=True)
class CreateJob:
    attempt: int
    manifest: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DeleteJob:
    name: str
    attempt: int
    why: str


@dataclasses.dataclass(frozen=True)
class DeleteFineTuneJob:
    why: str


Action = CreateService | CreateConfigMap | CreateJob | DeleteJob | DeleteConfigMap | DeleteFineTuneJob


@dataclasses.dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclasses.dataclass
class Decision:
    status: dict[str, Any]
    actions: list[Action]
    events: list[Event]
    requeue_after: float | None
    restart_kind: str | None = None
    """"preemption" or "failure" when this pass accounted a restart (for metrics)."""
    completion: str | None = None
    """"succeeded" or "failed" when this pass finished the job (for metrics)."""
