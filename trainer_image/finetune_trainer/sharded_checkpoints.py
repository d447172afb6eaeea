"""FSDP checkpoints in our commit protocol: who uploads which shard, who downloads which on resume.

HF Trainer saves an FSDP run with torch.distributed.checkpoint (DCP): ``pytorch_model_fsdp_0/``
and ``optimizer_0/`` each hold one ``__<rank>_<n>.distcp`` file per rank plus a ``.metadata`` file
written by rank 0. The commit protocol stays the one of docs/architecture.md
("Checkpoint commit protocol"): every rank uploads the files it wrote itself
(its ``.distcp`` shards and ``rng_state_<rank>.pth``) and its ``_rank-<r>.json``; rank 0 uploads
the rest and writes the manifest last (``rank_of_file`` tells ``checkpoints.files_owned_by_rank``
who owns what).

Resume: rank 0 lists the committed candidates, then every rank downloads into its own directory
only what it needs, verifies those digests, and all ranks agree (all-reduce) before one is used.
At the same world size (and full or grad-op sharding) a rank needs its own shard files plus the
files that hold unsharded items (DCP writes a replicated tensor, such as an optimizer's step
counter, once, on some rank); the ``.metadata`` files say which those are. At another world size,
or with hybrid sharding (replicas' identical shards are written once, by any replica), DCP
reshards on load and any rank may need any file, so it downloads them all. A checkpoint written
by DDP cannot be loaded by an FSDP run or the reverse: that is refused with exit 78.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import storage
from .errors import ConfigError
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    checkpoint_dir_name,
    parse_manifest,
    verify_digests,
)
from .world import WorldInfo

if TYPE_CHECKING:  # torch-free at import: the commit helper process imports this module
    from .distributed import Control
    from .sharding import ShardingPlan

log = logging.getLogger(__name__)

FSDP_MODEL_DIR_PREFIX = "pytorch_model_fsdp_"
DCP_METADATA = ".metadata"
DCP_SUFFIX = ".distcp"
_DCP_FILE = re.compile(r"^__(\d+)_\d+\.distcp$")
_RNG_FILE = re.compile(r"^rng_state_(\d+)\.pth$")


def rank_of_file(relpath: str) -> int | None:
    """The rank that wrote a checkpoint file, when only one rank did (pure)."""
    name = relpath.rsplit("/", 1)[-1]
    match = _DCP_FILE.match(name) or _RNG_FILE.match(name)
    return int(match.group(1)) if match else None


def is_sharded_layout(relpaths: list[str]) -> bool:
    """Whether a checkpoint holds FSDP shards (DCP) rather than a full HF model file."""
    return any(p.split("/", 1)[0].startswith(FSDP_MODEL_DIR_PREFIX) for p in relpaths)


def check_resume_layout(manifest: Manifest, uri: str, plan: ShardingPlan) -> None:
    """Refuse (exit 78) a checkpoint this run's strategy cannot load."""
    sharded = is_sharded_layout([f.path for f in manifest.files])
    if sharded and not plan.is_fsdp:
        raise ConfigError(
            f"checkpoint {uri} holds FSDP shards (written by {manifest.world_size} ranks) but this run "
            f"trains unsharded ({plan.strategy}: {plan.reason}); FSDP shards load only into FSDP: set "
            "spec.training.distribution.strategy: fsdp with more than one rank, or use a new "
            "spec.checkpoint.uri to start fresh"
        )
    if not sharded and plan.is_fsdp:
        raise ConfigError(
            f"checkpoint {uri} was written unsharded (ddp) but this run shards the model "
            f"(fsdp: {plan.reason}); set spec.training.distribution.strategy: ddp to resume it, or use "
            "a new spec.checkpoint.uri"
        )


def shared_shard_files(metadata: Any) -> set[str]:
    """DCP files (relative to their directory) that hold an unsharded item: every rank reads them."""
    unsharded: set[str] = set()
    for fqn, item in metadata.state_dict_metadata.items():
        chunks = getattr(item, "chunks", None)
        if chunks is None or len(chunks) == 1:
            unsharded.add(fqn)
    return {info.relative_path for index, info in metadata.storage_data.items() if index.fqn in unsharded}


def files_for_rank(relpaths: list[str], rank: int, same_layout: bool, shared: set[str]) -> list[str]:
    """The files of a sharded checkpoint one rank downloads (pure).

    ``shared`` holds checkpoint-relative paths of DCP files with unsharded items; with
    ``same_layout`` false (other world size, hybrid) every shard file is needed.
    """
    wanted = []
    for path in relpaths:
        owner = rank_of_file(path)
        if path.endswith(DCP_SUFFIX):
            if not same_layout or owner == rank or path in shared:
                wanted.append(path)
        elif owner is None or owner == rank:
            wanted.append(path)
    return wanted


def fetch_for_rank(
    manager: Any, step: int, local_root: Path, world: WorldInfo, plan: ShardingPlan
) -> tuple[Manifest, str, Path]:
    """Download what this rank needs of checkpoint-<step> into its own directory and verify it."""
    remote = storage.join(manager.uri, checkpoint_dir_name(step))
    manifest = parse_manifest(storage.read_text(storage.join(remote, MANIFEST_NAME)), expected_step=step)
    local_dir = local_root / f"rank-{world.rank}" / checkpoint_dir_name(step)
    shutil.rmtree(local_dir, ignore_errors=True)
    paths = [f.path for f in manifest.files]
    same_layout = manifest.world_size == world.world_size and plan.sharding != "hybrid"
    digests: dict[str, str] = {}

    def download(relpaths: list[str]) -> None:
        for rel in relpaths:
            target = local_dir / rel
            storage.download_file(storage.join(remote, rel), target)
            digests[rel] = storage.sha256_file(target)

    download([p for p in paths if not p.endswith(DCP_SUFFIX) and rank_of_file(p) in (None, world.rank)])
    shared: set[str] = set()
    if same_layout:
        from torch.distributed.checkpoint import FileSystemReader

        for meta in (p for p in paths if p.rsplit("/", 1)[-1] == DCP_METADATA):
            directory = meta.rsplit("/", 1)[0] if "/" in meta else ""
            metadata = FileSystemReader(str(local_dir / directory)).read_metadata()
            shared |= {f"{directory}/{name}" if directory else name for name in shared_shard_files(metadata)}
    download([p for p in files_for_rank(paths, world.rank, same_layout, shared) if p not in digests])
    mine = dataclasses.replace(manifest, files=tuple(f for f in manifest.files if f.path in digests))
    verify_digests(mine, digests)
    log.info(
        "downloaded this rank's part of the checkpoint",
        extra={"fields": {"checkpoint_step": step, "files": len(digests), "of": len(paths)}},
    )
    return manifest, remote, local_dir


def agree_on_sharded_resume(
    manager: Any, control: Control, world: WorldInfo, local_root: Path, plan: ShardingPlan
) -> Any:
    """The newest committed checkpoint every rank fetched and verified; None when there is none.

    Returns a checkpoints.ResumePoint whose local path is this rank's own directory.
    """
    from .checkpoints import ResumePoint

    candidates = None
    if world.is_main:
        candidates = []
        for step, manifest, reason in manager.candidates():
            if manifest is None:
                fields = {"checkpoint_step": step, "reason": reason}
                log.warning("skipping checkpoint", extra={"fields": fields})
            else:
                candidates.append(step)
    for step in control.broadcast(candidates):
        point, reason = None, ""
        try:
            manifest, remote, local_dir = fetch_for_rank(manager, step, local_root, world, plan)
            point = ResumePoint(step=step, local_path=str(local_dir), manifest=manifest, uri=remote)
        except ManifestError as exc:
            reason = str(exc)
        (failed,) = control.any_flags(point is None)
        if not failed:
            return point
        reason = reason or "another rank could not verify it"
        log.warning("skipping checkpoint", extra={"fields": {"checkpoint_step": step, "reason": reason}})
    return None
