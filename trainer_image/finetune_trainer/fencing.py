"""Fencing checkpoint writers by attempt, as pure functions.

Why: deleting an attempt's Job with background propagation, or force-deleting a pod, can leave the
old gang (a "zombie") uploading while the next attempt already runs against the same checkpoint
prefix. Without a fence the zombie's ``_rank-<r>.json`` parts could be merged into the new
attempt's manifest, the zombie could commit checkpoints after the new attempt resumed, and its
retention could delete the live attempt's checkpoints.

The fence, with the attempt number the operator gives every pod (``FINETUNE_ATTEMPT``):

- rank 0 of every attempt leaves a marker ``_attempts/attempt-<N>`` under the prefix before its
  first commit; a writer that sees a marker of a newer attempt is fenced: it commits nothing and
  deletes nothing;
- parts and manifests carry the attempt; rank 0 merges only parts of its own attempt;
- retention never deletes a checkpoint newer than the writer's own newest commit, nor one written
  by a newer attempt.

S3 has no compare-and-swap that all stores support, so the check-then-commit leaves a window of
one request; what it cannot stop (a zombie overwriting a file of a checkpoint the live attempt
committed) the manifest's sha256 still catches on resume.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .manifest import FileEntry, ManifestError, steps_to_delete

ATTEMPTS_DIR = "_attempts"
_MARKER = re.compile(r"^attempt-(\d+)$")


def attempt_marker_name(attempt: int) -> str:
    return f"attempt-{attempt}"


def attempts_in(names: Iterable[str]) -> list[int]:
    """Attempt numbers of the marker names found under ``_attempts/``, sorted."""
    found = (_MARKER.match(name.rstrip("/").rsplit("/", 1)[-1]) for name in names)
    return sorted(int(m.group(1)) for m in found if m)


def is_fenced(own_attempt: int, seen_attempts: Iterable[int]) -> bool:
    """True when a newer attempt has started on the prefix: this writer must stop writing."""
    return any(attempt > own_attempt for attempt in seen_attempts)


def rank_part_json(attempt: int, entries: Sequence[FileEntry]) -> str:
    """The body of ``_rank-<r>.json``: the writer's attempt and the files it uploaded."""
    files = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries]
    return json.dumps({"attempt": attempt, "files": files})


def parse_rank_part(text: str) -> tuple[int | None, list[FileEntry]]:
    """(attempt, files) of a part; a part of the format before fencing (a bare list) has no attempt."""
    try:
        body: Any = json.loads(text)
        if isinstance(body, list):
            attempt, files = None, body
        else:
            attempt, files = int(body["attempt"]), body["files"]
        return attempt, [FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in files]
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"rank part is malformed: {exc!r}") from exc


def retention_deletions(
    committed: Mapping[int, int | None], keep: int, own_newest: int, own_attempt: int
) -> list[int]:
    """Committed checkpoints (step -> attempt) that a writer may delete right after committing.

    Only checkpoints up to the writer's own newest commit and written by its own or an older
    attempt are eligible (a manifest without an attempt predates fencing: attempt 0); of those
    the newest ``keep`` stay. A checkpoint newer than the writer's own newest commit, or written
    by a newer attempt, is never deleted.
    """
    eligible = [
        step for step, attempt in committed.items() if step <= own_newest and (attempt or 0) <= own_attempt
    ]
    return steps_to_delete(eligible, keep)


def stale_partials(all_steps: Iterable[int], committed_steps: Iterable[int], own_newest: int) -> list[int]:
    """Uncommitted directories older than the writer's own newest commit: interrupted uploads.

    Only an unfenced writer (the newest attempt) calls this; directories above its own newest
    commit may still be in flight and are never touched.
    """
    committed = set(committed_steps)
    return sorted(s for s in set(all_steps) if s not in committed and s < own_newest)
