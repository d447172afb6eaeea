"""Checkpoint manifests: what makes a checkpoint exist, as pure functions.

A checkpoint directory ``checkpoint-<step>/`` counts only when its ``manifest.json`` — written
last, after every file is uploaded — parses, names the same step, and lists files whose sizes (when
discovered) and sha256 digests (after download) match. Everything here is pure so the rules can
be tested in a table without storage: building and verifying manifests, the configuration hash,
and which checkpoints retention deletes. The protocol is docs/architecture.md, "Checkpoint commit
protocol".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The layout names are part of the operator/trainer contract (the operator reports
# <checkpoint uri>/checkpoint-<step> in status.checkpoint); re-exported for the trainer's modules.
from finetune_api.contract import CHECKPOINT_DIR_PREFIX
from finetune_api.contract import MANIFEST_NAME as MANIFEST_NAME
from finetune_api.contract import RANK_PART_PREFIX as RANK_PART_PREFIX
from finetune_api.contract import checkpoint_dir_name as checkpoint_dir_name

MANIFEST_FORMAT = 1
_CHECKPOINT_DIR = re.compile(rf"^{re.escape(CHECKPOINT_DIR_PREFIX)}(\d+)$")


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint: path relative to the checkpoint directory, size and digest."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The commit record of one checkpoint."""

    step: int
    epoch: float
    world_size: int
    config_hash: str
    files: tuple[FileEntry, ...]
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    job: str = ""
    attempt: int = 0  # the operator's attempt that wrote it (fencing.py); 0 before fencing existed

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "step": self.step,
            "epoch": self.epoch,
            "worldSize": self.world_size,
            "configHash": self.config_hash,
            "created": self.created,
            "job": self.job,
            "attempt": self.attempt,
            "versions": dict(self.versions),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class ManifestError(ValueError):
    """A manifest is missing, malformed, or does not match the files it describes."""


def step_of_dir(name: str) -> int | None:
    """The step of a ``checkpoint-<step>`` directory name (last path component), else None."""
    match = _CHECKPOINT_DIR.match(name.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def parse_manifest(text: str, expected_step: int | None = None) -> Manifest:
    """Parse and sanity-check a manifest; raise ManifestError saying what is wrong."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"manifest format is not {MANIFEST_FORMAT}")
    try:
        files = tuple(
            FileEntry(path=str(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
            for f in body["files"]
        )
        manifest = Manifest(
            step=int(body["step"]),
            epoch=float(body["epoch"]),
            world_size=int(body["worldSize"]),
            config_hash=str(body["configHash"]),
            files=files,
            versions=dict(body.get("versions") or {}),
            created=str(body.get("created", "")),
            job=str(body.get("job", "")),
            attempt=int(body.get("attempt") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest lacks or mangles a field: {exc!r}") from exc
    if expected_step is not None and manifest.step != expected_step:
        raise ManifestError(f"manifest says step {manifest.step} but lives in checkpoint-{expected_step}")
    if not files:
        raise ManifestError("manifest lists no files")
    for entry in files:
        if entry.path.startswith("/") or ".." in entry.path.split("/"):
            raise ManifestError(f"manifest file path {entry.path!r} escapes the checkpoint directory")
    return manifest


def verify_sizes(manifest: Manifest, actual_sizes: Mapping[str, int]) -> None:
    """Every listed file exists with the listed size (cheap check on a remote listing)."""
    for entry in manifest.files:
        if entry.path not in actual_sizes:
            raise ManifestError(f"file {entry.path} listed in the manifest is missing")
        if actual_sizes[entry.path] != entry.size:
            raise ManifestError(
                f"file {entry.path} has {actual_sizes[entry.path]} bytes, the manifest says {entry.size}"
            )


def verify_digests(manifest: Manifest, actual_digests: Mapping[str, str]) -> None:
    """Every listed file has the listed sha256 (after download)."""
    for entry in manifest.files:
        digest = actual_digests.get(entry.path)
        if digest != entry.sha256:
            raise ManifestError(f"file {entry.path} has sha256 {digest}, the manifest says {entry.sha256}")


def merge_rank_parts(parts: Iterable[Iterable[FileEntry]]) -> tuple[FileEntry, ...]:
    """Union of the per-rank file lists, sorted by path; the same path twice must agree."""
    merged: dict[str, FileEntry] = {}
    for part in parts:
        for entry in part:
            previous = merged.get(entry.path)
            if previous is not None and previous != entry:
                raise ManifestError(f"ranks uploaded different contents for {entry.path}")
            merged[entry.path] = entry
    return tuple(merged[p] for p in sorted(merged))


def config_hash(spec: Mapping[str, Any], sections: Iterable[str] = ("model", "dataset", "training")) -> str:
    """A stable hash of the spec sections that shape the optimisation trajectory.

    Resources, checkpoint, output, storage, image and run policy may change between attempts
    without making a checkpoint's state wrong, so they are left out.
    """
    subset = {name: spec.get(name) for name in sections}
    canonical = json.dumps(subset, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def steps_to_delete(committed_steps: Iterable[int], keep: int) -> list[int]:
    """Committed checkpoints beyond the newest ``keep``; call only right after a new commit."""
    ordered = sorted(set(committed_steps), reverse=True)
    return sorted(ordered[max(keep, 1) :])


def stale_partial_steps(all_steps: Iterable[int], committed_steps: Iterable[int]) -> list[int]:
    """Uncommitted directories older than the newest commit: leftovers of interrupted uploads.

    Directories newer than the newest commit may still be in flight and are never touched.
    """
    committed = set(committed_steps)
    if not committed:
        return []
    newest = max(committed)
    return sorted(s for s in set(all_steps) if s not in committed and s < newest)
