"""The FineTuneJobs a schedule created, as its pure logic sees them: state, history, active list.

A child is the schedule's when it carries the label finetune.dev/schedule=<name> *and* a controller
owner reference to the schedule's UID (a job that only copies the label is not ours, and a recreated
schedule of the same name does not adopt its predecessor's runs). Its scheduled time comes from the
annotation finetune.dev/scheduled-time. Finished means condition Succeeded or Failed is True (the
FineTuneJob operator decides on conditions; status.phase, its one-word summary, is read as a
fallback); a child being deleted is no longer active.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from finetune_api.schedule import ANNOTATION_SCHEDULED_TIME, LABEL_SCHEDULE
from finetune_api.status import Phase
from finetune_operator import conditions as cond
from finetune_operator.timefmt import format_time as format_time  # re-exported: the one format
from finetune_operator.timefmt import parse_time as parse_time  # re-exported: the one parser

ChildState = Literal["active", "succeeded", "failed", "deleting"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Child:
    """One FineTuneJob of a schedule."""

    name: str
    namespace: str
    uid: str
    scheduled_time: datetime | None
    created: datetime | None
    state: ChildState
    finished_time: datetime | None

    @property
    def sort_key(self) -> tuple[datetime, datetime, str]:
        return (self.scheduled_time or _EPOCH, self.created or _EPOCH, self.name)

    def reference(self) -> dict[str, str]:
        """The status.active entry (an ObjectReference)."""
        return {
            "apiVersion": "finetune.dev/v1alpha1",
            "kind": "FineTuneJob",
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
        }


def _succeeded_condition_time(status: dict[str, Any]) -> datetime | None:
    conditions = status.get("conditions")
    if not cond.is_true(conditions, cond.SUCCEEDED):
        return None
    return parse_time((cond.get(conditions, cond.SUCCEEDED) or {}).get("lastTransitionTime"))


def is_controlled_by(body: dict[str, Any], schedule_uid: str) -> bool:
    """Whether `body` has a controller owner reference to the schedule with `schedule_uid`."""
    owners = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("uid") == schedule_uid and o.get("controller") for o in owners)


def child_from_body(body: dict[str, Any]) -> Child:
    """A Child from a FineTuneJob object as the API returns it."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    phase = status.get("phase")
    state: ChildState
    if metadata.get("deletionTimestamp"):
        state = "deleting"
    elif cond.is_true(status.get("conditions"), cond.FAILED) or phase == Phase.FAILED:
        state = "failed"
    elif cond.is_true(status.get("conditions"), cond.SUCCEEDED) or phase == Phase.SUCCEEDED:
        state = "succeeded"
    else:
        state = "active"
    finished = parse_time(status.get("completionTime"))
    if finished is None and state == "succeeded":
        finished = _succeeded_condition_time(status)
    return Child(
        name=metadata["name"],
        namespace=metadata.get("namespace", "default"),
        uid=metadata.get("uid", ""),
        scheduled_time=parse_time((metadata.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME)),
        created=parse_time(metadata.get("creationTimestamp")),
        state=state,
        finished_time=finished,
    )


def children_of(bodies: list[dict[str, Any]], schedule_name: str, schedule_uid: str) -> list[Child]:
    """The schedule's own children among `bodies` (label and controller owner both match), oldest first."""
    own = [
        child_from_body(b)
        for b in bodies
        if ((b.get("metadata") or {}).get("labels") or {}).get(LABEL_SCHEDULE) == schedule_name
        and is_controlled_by(b, schedule_uid)
    ]
    return sorted(own, key=lambda c: c.sort_key)


def active_children(children: list[Child]) -> list[Child]:
    """Children still running or pending (not finished, not being deleted), oldest first."""
    return [c for c in children if c.state == "active"]


def latest_scheduled_time(children: list[Child]) -> datetime | None:
    """The newest scheduled time among the children (deleted ones are gone and not counted)."""
    times = [c.scheduled_time for c in children if c.scheduled_time is not None]
    return max(times, default=None)


def last_successful_time(children: list[Child], previous: datetime | None) -> datetime | None:
    """The newest finish time of a succeeded child, never older than what status already says."""
    times = [c.finished_time for c in children if c.state == "succeeded" and c.finished_time is not None]
    if previous is not None:
        times.append(previous)
    return max(times, default=None)


def history_to_delete(children: list[Child], successful_limit: int, failed_limit: int) -> list[Child]:
    """Finished children beyond the history limits, oldest first (by scheduled time, then creation)."""
    doomed: list[Child] = []
    for state, limit in (("succeeded", successful_limit), ("failed", failed_limit)):
        finished = sorted((c for c in children if c.state == state), key=lambda c: c.sort_key)
        doomed += finished[: max(0, len(finished) - limit)]
    return sorted(doomed, key=lambda c: c.sort_key)
