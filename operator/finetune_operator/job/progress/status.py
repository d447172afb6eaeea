"""How live progress lands in the status: merging scrapes, the trainer's final summary, events.

Pure functions used by `reconcile.decide`. Three sources feed `status.progress` and
`status.checkpoint`, in increasing authority:

1. the previous status (kept when nothing newer is known, e.g. while a new attempt loads its model,
   so `kubectl get ftj` never blanks out during a restart);
2. this pass's scrape of rank 0's metrics (`Observed.progress` / `Observed.checkpoint`);
3. the trainer's completion summary: on exit 0 the trainer writes one JSON line to its termination
   message (see docs/architecture.md, "Contracts"), so the final step, loss and metric are exact
   even though the last scrape happened up to one poll interval before the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from finetune_api.contract import EXIT_OK, SUMMARY_METRICS, SUMMARY_PROGRESS_KEYS
from finetune_operator.job.pods import pod_index, trainer_termination

SUMMARY_KEYS = SUMMARY_PROGRESS_KEYS  # the completion summary's keys that are status.progress fields


def completion_summary(pods: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON summary rank 0 wrote to its termination message on success, if it did."""
    for pod in pods:
        if pod_index(pod) != 0:
            continue
        terminated = trainer_termination(pod) or {}
        if terminated.get("exitCode") != EXIT_OK:
            return None
        try:
            summary = json.loads(terminated.get("message") or "")
        except ValueError:
            return None
        return summary if isinstance(summary, dict) else None
    return None


def merged_progress(
    previous: Mapping[str, Any] | None,
    scraped: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    succeeded: bool,
) -> dict[str, Any] | None:
    """status.progress for this pass (see the module docstring for the precedence)."""
    progress = dict(previous or {})
    progress.update(scraped or {})
    if summary:
        progress.update({key: summary[key] for key in SUMMARY_KEYS if summary.get(key) is not None})
    if succeeded and progress:
        progress["percent"] = 100.0
        progress["etaSeconds"] = 0
        if progress.get("totalSteps") and not summary:
            progress["step"] = progress["totalSteps"]
    return progress or None


def merged_checkpoint(
    previous: Mapping[str, Any] | None, scraped: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """status.checkpoint: the newest committed checkpoint seen, never going back to an older one.

    A resumed attempt starts from the last committed checkpoint, so a scrape can report a step
    lower than status (a checkpoint the new attempt has not yet re-reported); keep the newer one.
    """
    if not scraped:
        return dict(previous) if previous else None
    if previous and int(previous.get("step") or 0) > int(scraped.get("step") or 0):
        return dict(previous)
    return dict(scraped)


def checkpoint_event(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None, due: bool
) -> str | None:
    """Message of a CheckpointCommitted event when a newer checkpoint appeared and the rate limit allows."""
    if not current or not due:
        return None
    if previous and previous.get("step") == current.get("step"):
        return None
    return f"checkpoint at step {current.get('step')} committed to {current.get('uri')}"


def final_metric_text(
    progress: Mapping[str, Any] | None, summary: Mapping[str, Any] | None, metric: str
) -> str:
    """', best f1_macro 0.912, eval loss 0.301' style suffix for the completion message."""
    parts = []
    source = {**(progress or {}), **(summary or {})}
    final_metrics = (summary or {}).get(SUMMARY_METRICS) or {}
    value = final_metrics.get(metric, final_metrics.get(f"eval_{metric}"))
    if value is not None:
        parts.append(f"final {metric} {_short(value)}")
    if source.get("bestMetric") is not None and metric != "loss":
        parts.append(f"best {metric} {_short(source['bestMetric'])}")
    if source.get("evalLoss") is not None:
        parts.append(f"eval loss {_short(source['evalLoss'])}")
    if source.get("step") is not None:
        parts.append(f"{source['step']} steps")
    return (", " + ", ".join(parts)) if parts else ""


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def drop_non_finite(value: Any) -> Any:
    """`value` (a status document) without any NaN or ±Inf float, at any depth.

    The last line of defence before a status write (issue 13 item 7): the API server refuses a
    patch that contains one, and a refused write used to fail every later pass of the job, its
    deadline and suspend included. Whatever produced the value, the rest of the status still lands.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        kept = {key: drop_non_finite(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if not _dropped(value[key], item)}
    if isinstance(value, list):
        return [drop_non_finite(item) for item in value if not _non_finite(item)]
    return value


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _dropped(original: Any, cleaned: Any) -> bool:
    return cleaned is None and _non_finite(original)


def progress_only_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when two statuses differ, and only in status.progress (a heartbeat of a running job).

    Such a write tells the user nothing but newer numbers, so the controller coalesces it to at
    most one per progress interval (issue 16); any other change (a condition, the phase, a
    checkpoint, the workers) is written at once.
    """
    if old == new:
        return False
    keys = (set(old) | set(new)) - {"progress"}
    return all(old.get(key) == new.get(key) for key in keys)


DETAIL_KEYS = frozenset({"progress", "workers", "message"})
"""Status fields that only add detail: live numbers, each worker's node and phase, the headline."""


def _gist(status: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Each condition's type, status, reason and generation: what a transition is made of."""
    return sorted(
        (str(c.get("type")), str(c.get("status")), str(c.get("reason")), str(c.get("observedGeneration")))
        for c in status.get("conditions") or ()
    )


def detail_only_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when two statuses differ only in detail: progress, workers, the headline, a condition's
    message with its status and reason unchanged ("1 of 3 workers are running" becoming "2 of 3").

    Like a progress heartbeat, such a write is coalesced to at most one per progress interval
    (issue 16: a gang whose pods start one by one cost a status write per pod); a transition (a
    condition's status or reason, the phase, the attempt, restarts, the checkpoint) is written at
    once and carries the newest detail with it.
    """
    if old == new:
        return False
    keys = (set(old) | set(new)) - DETAIL_KEYS - {"conditions"}
    if any(old.get(key) != new.get(key) for key in keys):
        return False
    return _gist(old) == _gist(new)
