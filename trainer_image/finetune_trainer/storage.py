"""Storage URIs through fsspec: the trainer owns all object-storage I/O
(docs/architecture.md, "Checkpoint commit protocol").

Accepted schemes are those of the API (s3, gs, az, file, pvc, hf) plus a bare local path. ``pvc://
<claim>/<path>`` names a PersistentVolumeClaim that the operator mounts at
``$FINETUNE_PVC_ROOT/<claim>`` (default ``/mnt/pvc``), so it maps to a local path. S3 endpoints
come from ``AWS_ENDPOINT_URL`` (set by the operator from ``spec.storage.endpoint`` or the Secret);
credentials from the standard ``AWS_*`` variables. Every function takes and returns URIs so the
callers never see a filesystem object.

Every function that talks to a store retries transient faults (503, timeouts, refused or reset
connections, expired tokens) with backoff through :mod:`.retry` and raises others untouched, so
a blip costs a logged retry instead of the job; see retry.py for which faults are which.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

from finetune_api import contract

from . import objstore
from .errors import ConfigError
from .retry import call_with_retries

_FSSPEC_PROTOCOL = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "abfs", "abfs": "abfs", "hf": "hf"}
ACCEPTED_SCHEMES = ("s3", "gs", "az", "file", "pvc", "hf")
_CHUNK = 4 * 1024 * 1024


def pvc_root() -> str:
    """Where the operator mounts the claims (``$FINETUNE_PVC_ROOT``, default /mnt/pvc)."""
    return os.environ.get(contract.ENV_PVC_ROOT, contract.DEFAULT_PVC_ROOT)


def scheme_of(uri: str) -> str:
    return urlparse(uri).scheme.lower() if "://" in uri else ""


def local_path_of(uri: str) -> str | None:
    """The local filesystem path a URI maps to, or None for remote storage."""
    scheme = scheme_of(uri)
    if scheme == "":
        return os.path.abspath(uri)
    if scheme == "file":
        parsed = urlparse(uri)
        # file:///abs/path and file://host/path (host ignored, as curl does for localhost)
        return parsed.path or "/"
    if scheme == "pvc":
        rest = uri.split("://", 1)[1].strip("/")
        if not rest:
            raise ConfigError(f"URI {uri!r} names no PersistentVolumeClaim: use pvc://<claim>/<path>")
        return os.path.join(pvc_root(), rest)
    return None


def _s3_options() -> dict[str, Any]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    # Other ranks and attempts write the same prefixes: never answer from a stale listing.
    options: dict[str, Any] = {"use_listings_cache": False}
    # No SHA-256 of every request body for the signature (botocore otherwise hashes each upload
    # once more on plain-http endpoints): the CRC32 checksum header still guards the transfer, and
    # checkpoint files carry their own sha256 in the manifest, verified on resume.
    s3_config: dict[str, Any] = {"payload_signing_enabled": False}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
        s3_config["addressing_style"] = "path"
    options["config_kwargs"] = {"s3": s3_config}
    return options


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the path inside it for a URI."""
    local = local_path_of(uri)
    if local is not None:
        return fsspec.filesystem("file", auto_mkdir=True), local
    scheme = scheme_of(uri)
    protocol = _FSSPEC_PROTOCOL.get(scheme)
    if protocol is None:
        raise ConfigError(
            f"URI {uri!r} has scheme {scheme!r}; accepted schemes are {', '.join(ACCEPTED_SCHEMES)}"
        )
    options = _s3_options() if protocol == "s3" else {}
    try:
        fs = fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        raise ConfigError(
            f"URI {uri!r} needs the fsspec backend for {scheme}://, "
            f"which is not installed in the trainer image ({exc})"
        ) from exc
    return fs, uri.split("://", 1)[1].rstrip("/")


def join(uri: str, *parts: str) -> str:
    base = uri.rstrip("/")
    return posixpath.join(base, *[p.strip("/") for p in parts if p])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    if local_path_of(uri) is not None:
        return bool(fs.exists(path))

    def check() -> bool:
        # s3fs answers False for any error inside exists(): ask info() so a 503 is not "absent".
        try:
            fs.info(path)
        except FileNotFoundError:
            return False
        return True

    return call_with_retries(check, f"look up {uri}")


def read_bytes(uri: str, compression: str | None = None) -> bytes:
    """The whole object (decompressed when ``compression`` is given, e.g. "gzip")."""
    fs, path = filesystem(uri)

    def read() -> bytes:
        with fs.open(path, "rb", compression=compression) as handle:
            return handle.read()

    return call_with_retries(read, f"read {uri}")


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    """Write a small object in one piece (atomic rename on local filesystems)."""
    fs, path = filesystem(uri)
    if local_path_of(uri) is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return
    body = text.encode("utf-8")
    call_with_retries(lambda: fs.pipe_file(path, body), f"write {uri}")


def list_entries(uri: str) -> dict[str, dict[str, Any]]:
    """Immediate children of a directory URI: name -> {'type': 'file'|'directory', 'size': int}."""
    fs, path = filesystem(uri)

    def listing() -> list[dict[str, Any]]:
        if hasattr(fs, "invalidate_cache"):
            fs.invalidate_cache(path)
        return fs.ls(path, detail=True)

    try:
        infos = call_with_retries(listing, f"list {uri}")
    except FileNotFoundError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for info in infos:
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if not name or info["name"].rstrip("/") == path.rstrip("/"):
            continue
        out[name] = {"type": info.get("type", "file"), "size": int(info.get("size") or 0)}
    return out


def file_sizes(uri: str) -> dict[str, int]:
    """Every file under a directory URI, recursively: relative path -> size."""
    fs, path = filesystem(uri)

    def listing() -> dict[str, dict[str, Any]]:
        if hasattr(fs, "invalidate_cache"):
            fs.invalidate_cache(path)
        return fs.find(path, detail=True)

    try:
        found = call_with_retries(listing, f"list {uri}")
    except FileNotFoundError:
        return {}
    prefix = path.rstrip("/") + "/"
    return {
        name[len(prefix) :]: int(info.get("size") or 0)
        for name, info in found.items()
        if name.startswith(prefix) and info.get("type", "file") == "file"
    }


def upload_file(
    local_path: str | Path, uri: str, part_size: int | None = None, part_concurrency: int | None = None
) -> int:
    """Copy one local file to a URI; returns the number of bytes.

    With ``part_size`` on S3 the file goes through obstore (objstore.py): a file larger than one
    part becomes a multipart upload with ``part_concurrency`` parts in flight, off the GIL; the
    object appears whole or not at all either way.
    """
    size = os.path.getsize(local_path)
    if scheme_of(uri) == "s3" and part_size:
        concurrency = part_concurrency or 1
        call_with_retries(lambda: objstore.put_file(local_path, uri, part_size, concurrency), f"upload {uri}")
        return size
    fs, path = filesystem(uri)
    call_with_retries(lambda: fs.put_file(str(local_path), path), f"upload {uri}")
    return size


def download_file(uri: str, local_path: str | Path) -> None:
    fs, path = filesystem(uri)
    os.makedirs(os.path.dirname(str(local_path)), exist_ok=True)
    call_with_retries(lambda: fs.get_file(path, str(local_path)), f"download {uri}")


def download_dir(uri: str, local_dir: str | Path) -> list[str]:
    """Copy every file under a directory URI into ``local_dir``; returns the relative paths."""
    relpaths = sorted(file_sizes(uri))
    for rel in relpaths:
        download_file(join(uri, rel), Path(local_dir) / rel)
    return relpaths


def remove_tree(uri: str) -> None:
    fs, path = filesystem(uri)
    with contextlib.suppress(FileNotFoundError):
        call_with_retries(lambda: fs.rm(path, recursive=True), f"delete {uri}")
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache(path)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def walk_files(local_dir: str | Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, absolute path) of every file under a local directory, sorted."""
    root = Path(local_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield path.relative_to(root).as_posix(), path
