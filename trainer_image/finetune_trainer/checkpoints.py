"""The checkpoint manager of docs/architecture.md, "Checkpoint commit protocol": background upload,
manifest last, retention, verified resume.

HF Trainer writes ``checkpoint-<step>/`` into the local work directory (model, optimizer, scheduler,
RNG states, trainer state). The manager then, in a background thread (at most one upload in
flight; a new save waits for the previous upload), copies it to ``<checkpoint.uri>/checkpoint-<step>/``:

- every rank uploads the files it wrote itself (rank 0 everything except other ranks' RNG
  states; rank r only ``rng_state_<r>.pth``) and then a small ``_rank-<r>.json`` with their sizes
  and digests;
- rank 0 waits for all parts, merges them and writes ``manifest.json`` **last**: only now does the
  checkpoint exist; then it deletes committed checkpoints beyond ``keep`` and stale partial ones.

Resume looks for the newest checkpoint whose manifest parses, whose files have the listed sizes
and — after download — the listed sha256; others are skipped with a logged reason. The local copy
is handed to ``trainer.train(resume_from_checkpoint=<path>)`` explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune_api.contract import ENV_ATTEMPT

from . import storage
from .commit_process import CommitProcess
from .fencing import (
    ATTEMPTS_DIR,
    attempt_marker_name,
    attempts_in,
    is_fenced,
    parse_rank_part,
    rank_part_json,
    retention_deletions,
    stale_partials,
)
from .manifest import (
    MANIFEST_NAME,
    RANK_PART_PREFIX,
    FileEntry,
    Manifest,
    ManifestError,
    checkpoint_dir_name,
    merge_rank_parts,
    parse_manifest,
    step_of_dir,
    verify_digests,
    verify_sizes,
)
from .sharded_checkpoints import rank_of_file
from .upload import upload_files
from .world import WorldInfo

log = logging.getLogger(__name__)

ENV_COMMIT_PROCESS = "FINETUNE_CHECKPOINT_COMMIT_PROCESS"
"""Set to 0 to commit checkpoints on a thread of the trainer instead of a helper process."""
PART_WAIT_SECONDS = float(os.environ.get("FINETUNE_CHECKPOINT_PART_WAIT_SECONDS", "900"))


def files_owned_by_rank(relpaths: list[str], rank: int, world_size: int) -> list[str]:
    """Which files of a local HF checkpoint a rank uploads (pure; see the module docstring)."""
    if world_size == 1:
        return list(relpaths)

    # rng_state_<r>.pth, and under FSDP each rank's shard files __<r>_<n>.distcp (sharded_checkpoints).
    if rank == 0:
        return [p for p in relpaths if rank_of_file(p) in (None, 0)]
    return [p for p in relpaths if rank_of_file(p) == rank]


@dataclass(frozen=True)
class CommitRecord:
    step: int
    uri: str
    timestamp: float
    bytes: int
    upload_seconds: float


@dataclass(frozen=True)
class ResumePoint:
    step: int
    local_path: str
    manifest: Manifest
    uri: str


class CheckpointManager:
    """Uploads and commits checkpoints; finds and fetches the newest verified one."""

    def __init__(
        self,
        uri: str,
        keep: int,
        world: WorldInfo,
        config_hash: str,
        versions: Mapping[str, str],
        job: str,
        on_commit: Callable[[CommitRecord], None] | None = None,
        on_upload: Callable[[float, int], None] | None = None,
        attempt: int | None = None,
        commit_process: bool | None = None,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.keep = keep
        self.world = world
        self.config_hash = config_hash
        self.versions = dict(versions)
        self.job = job
        self.on_commit = on_commit
        self.on_upload = on_upload
        # Which attempt of the job this writer is (fencing.py); 0 when run outside the operator.
        self.attempt = attempt if attempt is not None else int(os.environ.get(ENV_ATTEMPT) or 0)
        self._attempt_registered = False
        self.fenced = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.last_commit: CommitRecord | None = None
        kill_step = os.environ.get("FINETUNE_TEST_KILL_AFTER_COMMIT_STEP")
        self._test_kill_step = int(kill_step) if kill_step else None
        if commit_process is None:
            commit_process = os.environ.get(ENV_COMMIT_PROCESS, "1") != "0"
        # Commits run in a helper process (commit_process.py) unless disabled; started by submit().
        self._commit_process: CommitProcess | None = (
            CommitProcess(self._child_settings()) if commit_process else None
        )

    def _child_settings(self) -> dict[str, Any]:
        """What the commit process needs to build the same manager (JSON)."""
        return {
            "uri": self.uri,
            "keep": self.keep,
            "world": asdict(self.world),
            "configHash": self.config_hash,
            "versions": self.versions,
            "job": self.job,
            "attempt": self.attempt,
            "logContext": {"job": self.job, "rank": self.world.rank},
        }

    def disable_test_hooks(self) -> None:
        self._test_kill_step = None

    def close(self) -> None:
        """Stop the commit process (after waiting for the upload in flight)."""
        self.wait()
        if self._commit_process is not None:
            self._commit_process.close()

    # ------------------------------------------------------------------ saving

    def submit(self, local_dir: str | Path, step: int, epoch: float) -> None:
        """Start uploading a freshly written local checkpoint (waits for the previous upload)."""
        waited = time.monotonic()
        self.wait()
        if self._commit_process is not None:
            self._commit_process.start()  # on the caller's (training) thread: the child dies with it
        if time.monotonic() - waited > 0.5:
            log.info(
                "previous checkpoint upload was still running; waited for it",
                extra={"fields": {"waited_seconds": round(time.monotonic() - waited, 3)}},
            )
        self._thread = threading.Thread(
            target=self._upload_guarded,
            args=(Path(local_dir), step, epoch),
            name=f"ckpt-upload-{step}",
            daemon=True,
        )
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the upload in flight (if any) is done; re-raise its error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"checkpoint upload did not finish within {timeout} seconds")
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"checkpoint upload to {self.uri} failed: {error}") from error

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _upload_guarded(self, local_dir: Path, step: int, epoch: float) -> None:
        try:
            if self._commit_process is not None:
                self._commit_in_child(local_dir, step, epoch)
            else:
                self.commit_now(local_dir, step, epoch)
        except BaseException as exc:  # surfaced by wait() on the training thread
            log.exception("checkpoint upload failed", extra={"fields": {"checkpoint_step": step}})
            self._error = exc

    def register_attempt(self) -> None:
        """Rank 0: leave this attempt's marker under the prefix, fencing off older writers."""
        if self._attempt_registered or not self.world.is_main:
            return
        marker = storage.join(self.uri, ATTEMPTS_DIR, attempt_marker_name(self.attempt))
        storage.write_text(marker, json.dumps({"attempt": self.attempt, "job": self.job}))
        self._attempt_registered = True

    def _newer_attempt(self) -> bool:
        """True (and remembered) once a newer attempt's marker is under the prefix."""
        if not self.fenced:
            seen = attempts_in(storage.list_entries(storage.join(self.uri, ATTEMPTS_DIR)))
            if is_fenced(self.attempt, seen):
                self.fenced = True
                log.warning(
                    "a newer attempt writes this checkpoint prefix; this writer commits and deletes nothing",
                    extra={"fields": {"attempt": self.attempt, "newest_attempt": max(seen), "uri": self.uri}},
                )
        return self.fenced

    def _commit_in_child(self, local_dir: Path, step: int, epoch: float) -> None:
        """``commit_now`` in the commit process; its results reported here, as if done here."""
        assert self._commit_process is not None
        reply = self._commit_process.commit(local_dir, step, epoch)
        self.fenced = self.fenced or bool(reply.get("fenced"))
        if reply.get("upload") and self.on_upload is not None:
            seconds, size = reply["upload"]
            self.on_upload(float(seconds), int(size))
        if reply.get("commit"):
            self._committed(CommitRecord(**reply["commit"]))

    def _committed(self, record: CommitRecord) -> None:
        self.last_commit = record
        if self.on_commit is not None:
            self.on_commit(record)
        if self._test_kill_step is not None and record.step == self._test_kill_step:
            log.warning("test hook: SIGKILL after commit", extra={"fields": {"checkpoint_step": record.step}})
            os.kill(os.getpid(), signal.SIGKILL)

    def commit_now(self, local_dir: Path, step: int, epoch: float) -> None:
        """Upload this rank's files of a local checkpoint and commit it, on the calling thread."""
        started = time.monotonic()
        self.register_attempt()
        remote = storage.join(self.uri, checkpoint_dir_name(step))
        relpaths = [rel for rel, _ in storage.walk_files(local_dir)]
        if not relpaths:  # never commit an empty checkpoint: a resume would take it for the newest
            raise FileNotFoundError(f"the local checkpoint {local_dir} holds no files")
        mine = files_owned_by_rank(relpaths, self.world.rank, self.world.world_size)
        entries = upload_files([(rel, local_dir / rel) for rel in mine], remote)
        total = sum(entry.size for entry in entries)
        storage.write_text(
            storage.join(remote, f"{RANK_PART_PREFIX}{self.world.rank}.json"),
            rank_part_json(self.attempt, entries),
        )
        upload_seconds = time.monotonic() - started
        if self.on_upload is not None:
            self.on_upload(upload_seconds, total)
        if not self.world.is_main:
            return
        parts = [entries] + [self._wait_for_part(remote, r) for r in range(1, self.world.world_size)]
        if self._newer_attempt():
            shutil.rmtree(local_dir, ignore_errors=True)
            return
        manifest = Manifest(
            step=step,
            epoch=epoch,
            world_size=self.world.world_size,
            config_hash=self.config_hash,
            files=merge_rank_parts(parts),
            versions=self.versions,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            job=self.job,
            attempt=self.attempt,
        )
        storage.write_text(storage.join(remote, MANIFEST_NAME), manifest.to_json())  # the commit
        record = CommitRecord(step, remote, time.time(), manifest.total_bytes, time.monotonic() - started)
        log.info(
            "checkpoint committed",
            extra={
                "fields": {
                    "checkpoint_step": step,
                    "uri": remote,
                    "bytes": record.bytes,
                    "seconds": round(record.upload_seconds, 3),
                }
            },
        )
        self._committed(record)
        self._apply_retention(step)
        shutil.rmtree(local_dir, ignore_errors=True)

    def _wait_for_part(self, remote: str, rank: int) -> list[FileEntry]:
        """Rank ``rank``'s part of this attempt; parts other attempts left behind are not merged."""
        part_uri = storage.join(remote, f"{RANK_PART_PREFIX}{rank}.json")
        deadline = time.monotonic() + PART_WAIT_SECONDS
        while True:
            if storage.exists(part_uri):
                attempt, files = parse_rank_part(storage.read_text(part_uri))
                if attempt == self.attempt:
                    return files
                if attempt is not None and attempt > self.attempt:
                    raise ManifestError(
                        f"rank {rank}'s part of {remote} was written by attempt {attempt}, newer than "
                        f"this writer's {self.attempt}: this gang is stale and must not commit"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"rank {rank} did not upload its part of {remote} within {PART_WAIT_SECONDS}s"
                )
            time.sleep(0.1)

    def _apply_retention(self, own_newest: int) -> None:
        """Delete old and interrupted checkpoints, never another (newer) writer's: see fencing.py."""
        if self._newer_attempt():
            return
        all_steps, committed = self._scan()
        attempts = {step: self._attempt_of(step) for step in committed}
        doomed = retention_deletions(attempts, self.keep, own_newest, self.attempt)
        for step in doomed + stale_partials(all_steps, committed, own_newest):
            target = storage.join(self.uri, checkpoint_dir_name(step))
            log.info("deleting old checkpoint", extra={"fields": {"checkpoint_step": step, "uri": target}})
            # Manifest first: a half-deleted checkpoint must not look committed.
            manifest_uri = storage.join(target, MANIFEST_NAME)
            if storage.exists(manifest_uri):
                storage.remove_tree(manifest_uri)
            storage.remove_tree(target)

    def _attempt_of(self, step: int) -> int | None:
        """The attempt a committed checkpoint's manifest names (None when unreadable: kept)."""
        try:
            text = storage.read_text(storage.join(self.uri, checkpoint_dir_name(step), MANIFEST_NAME))
            return parse_manifest(text, expected_step=step).attempt
        except (ManifestError, FileNotFoundError):
            return None

    def _scan(self) -> tuple[list[int], list[int]]:
        entries = storage.list_entries(self.uri)
        steps = sorted(s for name in entries if (s := step_of_dir(name)) is not None)
        committed = [
            s for s in steps if storage.exists(storage.join(self.uri, checkpoint_dir_name(s), MANIFEST_NAME))
        ]
        return steps, committed

    # ------------------------------------------------------------------ resuming

    def candidates(self) -> list[tuple[int, Manifest | None, str]]:
        """Every checkpoint directory, newest first: (step, manifest or None, reason it is unusable)."""
        out: list[tuple[int, Manifest | None, str]] = []
        steps, _ = self._scan()
        for step in sorted(steps, reverse=True):
            remote = storage.join(self.uri, checkpoint_dir_name(step))
            manifest_uri = storage.join(remote, MANIFEST_NAME)
            if not storage.exists(manifest_uri):
                out.append((step, None, "no manifest (upload never committed)"))
                continue
            try:
                manifest = parse_manifest(storage.read_text(manifest_uri), expected_step=step)
                verify_sizes(manifest, storage.file_sizes(remote))
            except ManifestError as exc:
                out.append((step, None, str(exc)))
                continue
            out.append((step, manifest, ""))
        return out

    def newest_verified_step(self) -> int | None:
        """The newest step whose manifest parses and whose remote files have the listed sizes."""
        for step, manifest, reason in self.candidates():
            if manifest is not None:
                return step
            log.warning("skipping checkpoint", extra={"fields": {"checkpoint_step": step, "reason": reason}})
        return None

    def fetch(self, step: int, local_root: str | Path) -> ResumePoint:
        """Download checkpoint-<step> into ``local_root`` and verify every digest."""
        remote = storage.join(self.uri, checkpoint_dir_name(step))
        manifest = parse_manifest(storage.read_text(storage.join(remote, MANIFEST_NAME)), expected_step=step)
        local_dir = Path(local_root) / checkpoint_dir_name(step)
        shutil.rmtree(local_dir, ignore_errors=True)
        digests: dict[str, str] = {}
        for entry in manifest.files:
            target = local_dir / entry.path
            storage.download_file(storage.join(remote, entry.path), target)
            digests[entry.path] = storage.sha256_file(target)
        verify_digests(manifest, digests)
        return ResumePoint(step=step, local_path=str(local_dir), manifest=manifest, uri=remote)

    def describe(self, step: int, local_root: str | Path) -> ResumePoint:
        """The resume point of a checkpoint another local rank has already downloaded."""
        remote = storage.join(self.uri, checkpoint_dir_name(step))
        manifest = parse_manifest(storage.read_text(storage.join(remote, MANIFEST_NAME)), expected_step=step)
        return ResumePoint(step, str(Path(local_root) / checkpoint_dir_name(step)), manifest, remote)

    def fetch_newest(self, local_root: str | Path) -> ResumePoint | None:
        """Newest checkpoint that verifies completely (sizes and digests), downloaded; else None.

        Called by rank 0 at start, it first registers this attempt (fencing older writers off).
        """
        self.register_attempt()
        for step, manifest, reason in self.candidates():
            if manifest is None:
                log.warning(
                    "skipping checkpoint", extra={"fields": {"checkpoint_step": step, "reason": reason}}
                )
                continue
            try:
                return self.fetch(step, local_root)
            except ManifestError as exc:
                log.warning(
                    "skipping checkpoint", extra={"fields": {"checkpoint_step": step, "reason": str(exc)}}
                )
        return None
