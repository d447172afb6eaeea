"""Uploading one rank's share of a checkpoint: files in parallel, big files in parallel parts.

Why: uploading file after file, each as one request after hashing it, left the store idle while we
hashed and the network idle while the store wrote; a 25 MiB checkpoint reached a quarter of a
local-disk copy. Here every file is uploaded (and hashed while it uploads) by a small thread pool
(``hashlib`` and socket I/O release the GIL), and a large file goes up as a
multipart upload with several parts in flight. The commit protocol does not change: the caller
writes its part list and (rank 0) the manifest only after every file here is uploaded, and the
digests are those of the local files, verified again after download on resume.

Tuning (env): ``FINETUNE_CHECKPOINT_UPLOAD_WORKERS`` (files in flight, default 4),
``FINETUNE_CHECKPOINT_PART_MIB`` (multipart part size, default 8, S3's minimum is 5) and
``FINETUNE_CHECKPOINT_PART_CONCURRENCY`` (parts in flight per file, default 4).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import storage
from .manifest import FileEntry


def _env_int(name: str, default: int, minimum: int) -> int:
    try:
        return max(int(os.environ.get(name) or default), minimum)
    except ValueError:
        return default


@dataclass(frozen=True)
class UploadTuning:
    workers: int = 4
    part_size: int = 8 * 2**20
    part_concurrency: int = 4

    @classmethod
    def from_env(cls) -> UploadTuning:
        return cls(
            workers=_env_int("FINETUNE_CHECKPOINT_UPLOAD_WORKERS", 4, 1),
            part_size=_env_int("FINETUNE_CHECKPOINT_PART_MIB", 8, 5) * 2**20,
            part_concurrency=_env_int("FINETUNE_CHECKPOINT_PART_CONCURRENCY", 4, 1),
        )


def largest_first(items: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Start the big files first so the small ones fill the gaps instead of trailing (pure order)."""
    return sorted(items, key=lambda item: (-item[1].stat().st_size, item[0]))


def upload_files(
    items: Sequence[tuple[str, Path]], remote: str, tuning: UploadTuning | None = None
) -> list[FileEntry]:
    """Hash and upload (relative path, local path) pairs under ``remote``; entries sorted by path.

    Each file is retried on transient faults by ``storage.upload_file``; the first file that
    fails for good fails the whole call (the checkpoint then never gets a manifest).
    """
    tuning = tuning or UploadTuning.from_env()

    def one(rel: str, path: Path) -> FileEntry:
        # The hash is computed while the bytes go up (the file is immutable once written), not before.
        with ThreadPoolExecutor(1, thread_name_prefix="ckpt-hash") as hasher:
            digest = hasher.submit(storage.sha256_file, path)
            size = storage.upload_file(
                path, storage.join(remote, rel), tuning.part_size, tuning.part_concurrency
            )
            return FileEntry(rel, size, digest.result())

    ordered = largest_first(items)
    if len(ordered) <= 1 or tuning.workers == 1:
        entries = [one(rel, path) for rel, path in ordered]
    else:
        with ThreadPoolExecutor(min(tuning.workers, len(ordered)), thread_name_prefix="ckpt-file") as pool:
            futures = [pool.submit(one, rel, path) for rel, path in ordered]
            entries = [future.result() for future in futures]
    return sorted(entries, key=lambda entry: entry.path)
