"""Plain-dict Kubernetes objects (as the API returns them) for the operator's unit tests."""

from __future__ import annotations

from typing import Any


def job_obj(attempt: int, conditions: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    metadata = {"name": f"reviews-a{attempt}", "labels": {"finetune.dev/attempt": str(attempt)}}
    metadata.update(extra.pop("metadata", {}))
    return {"metadata": metadata, "spec": extra.pop("spec", {}), "status": {"conditions": conditions or []}}


def pod_obj(
    attempt: int,
    index: int,
    phase: str = "Running",
    exit_code: int | None = None,
    message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": f"reviews-a{attempt}-{index}-xyz",
        "labels": {"finetune.dev/attempt": str(attempt)},
        "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if reason:
        status["reason"] = reason
    if exit_code is not None:
        terminated = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}
        terminated["finishedAt"] = "2026-01-01T00:00:00Z"
        if message:
            terminated["message"] = message
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": terminated}}]
    return {"metadata": metadata, "spec": {"nodeName": f"gpu-{index}"}, "status": status}


def true(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": "True", **extra}
