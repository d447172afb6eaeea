"""Status conditions kept the Kubernetes way (docs/architecture.md "Status conditions"): a list
keyed by `type`.

`lastTransitionTime` changes only when a condition's `status` changes, so `kubectl describe` shows
when something actually happened, not when the operator last looked. Reason and message may be
refreshed without a transition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

from finetune_api.status import ConditionType

# The type names are the API's (finetune_api.status.ConditionType); plain strings here because
# conditions travel as plain dicts.
CREATED: Final = ConditionType.CREATED.value
RUNNING: Final = ConditionType.RUNNING.value
RESTARTING: Final = ConditionType.RESTARTING.value
SUSPENDED: Final = ConditionType.SUSPENDED.value
SUCCEEDED: Final = ConditionType.SUCCEEDED.value
FAILED: Final = ConditionType.FAILED.value
STALLED: Final = ConditionType.STALLED.value

ALL_TYPES: Final = tuple(kind.value for kind in ConditionType)
"""Every condition the operator maintains, in the order they are listed in status (the API's order)."""

WARNING_WHEN_TRUE = frozenset({RESTARTING, FAILED, STALLED})


@dataclasses.dataclass(frozen=True)
class Desired:
    """What a condition should say now (the time is filled in by `merge_conditions`)."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Transition:
    """A condition whose status changed in this pass: the operator emits one Event per transition."""

    type: str
    old_status: str | None
    new_status: str
    reason: str
    message: str

    @property
    def warning(self) -> bool:
        return self.new_status == "True" and self.type in WARNING_WHEN_TRUE


def get(conditions: Sequence[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == kind:
            return condition
    return None


def is_true(conditions: Sequence[dict[str, Any]] | None, kind: str) -> bool:
    condition = get(conditions, kind)
    return condition is not None and condition.get("status") == "True"


def merge_conditions(
    current: Sequence[dict[str, Any]] | None,
    desired: Iterable[Desired],
    now: str,
    generation: int,
) -> tuple[list[dict[str, Any]], list[Transition]]:
    """The new conditions list and the transitions it contains.

    Conditions not mentioned in `desired` are kept as they are; the result is ordered by ALL_TYPES
    (unknown types last) so that status writes are stable and diffs stay quiet.
    """
    by_type = {condition.get("type"): dict(condition) for condition in current or () if condition.get("type")}
    transitions: list[Transition] = []
    for want in desired:
        old = by_type.get(want.type)
        old_status = old.get("status") if old else None
        changed = old_status != want.status
        by_type[want.type] = {
            "type": want.type,
            "status": want.status,
            "reason": want.reason,
            "message": want.message,
            "lastTransitionTime": now if changed or not old else old.get("lastTransitionTime", now),
            "observedGeneration": generation,
        }
        if changed:
            transitions.append(Transition(want.type, old_status, want.status, want.reason, want.message))
    order = {kind: position for position, kind in enumerate(ALL_TYPES)}
    merged = sorted(
        by_type.values(), key=lambda condition: (order.get(condition["type"], len(order)), condition["type"])
    )
    return merged, transitions
