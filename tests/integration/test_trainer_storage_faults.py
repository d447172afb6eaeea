"""Storage faults and zombie writers against a real S3 server (a private SeaweedFS we may stop).

- Two writers (two attempts) on one checkpoint prefix: the older one, still uploading after the
  newer one started, commits nothing and deletes nothing; a stale part of the older attempt is
  never merged into the newer attempt's manifest; retention spares what the writer did not write.
- The S3 server is stopped while the trainer reads its data and while it uploads a checkpoint,
  then started again: the run ends with exit 0, every committed checkpoint verifies, and the
  trainer logged retries instead of failing.
- A store that denies the credentials is permanent: exit 78 at once, no retries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from finetune_testkit.private_s3 import PrivateS3
from finetune_testkit.trainer_helpers import (
    REPO,
    classification_spec,
    json_lines,
    tiny_classification_files,
    trainer_env,
    write_config,
)
from finetune_trainer.checkpoints import CheckpointManager
from finetune_trainer.distributed import WorldInfo
from finetune_trainer.manifest import parse_manifest
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def private_s3(tmp_path_factory) -> PrivateS3:
    server = PrivateS3(tmp_path_factory.mktemp("private-s3"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(private_s3, monkeypatch) -> dict[str, str]:
    for key, value in private_s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FINETUNE_CHECKPOINT_PART_WAIT_SECONDS", "120")
    return private_s3.env()


def local_checkpoint(root: Path, step: int, world_size: int, tag: str) -> Path:
    """A checkpoint directory as HF writes it, with per-rank RNG files; ``tag`` marks the writer."""
    directory = root / tag / f"checkpoint-{step}"
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(f"{tag}-{step}".encode() * 512)
    (directory / "trainer_state.json").write_text(json.dumps({"global_step": step, "writer": tag}))
    for rank in range(world_size):
        (directory / f"rng_state_{rank}.pth").write_bytes(f"{tag}-rng-{rank}-{step}".encode() * 8)
    return directory


def files_under(s3, path: str) -> list[str]:
    """Objects under a prefix (SeaweedFS keeps an emptied directory's own entry: not a file)."""
    return [name for name, info in s3.find(path, detail=True).items() if info.get("type") == "file"]


def manager(uri: str, attempt: int, rank: int = 0, world_size: int = 1, keep: int = 2) -> CheckpointManager:
    world = WorldInfo(rank, rank, world_size)
    return CheckpointManager(uri, keep, world, "h", {}, "zombie-test", attempt=attempt)


def commit(writer: CheckpointManager, root: Path, step: int, tag: str) -> None:
    writer.submit(local_checkpoint(root, step, writer.world.world_size, tag), step, epoch=step / 10)
    writer.wait(120)


def test_an_older_attempt_still_writing_commits_and_deletes_nothing(tmp_path, private_s3, s3_env):
    s3 = private_s3.filesystem()
    uri = f"s3://{private_s3.bucket}/zombies/{uuid.uuid4().hex[:8]}"
    old = manager(uri, attempt=1, keep=1)
    commit(old, tmp_path, 10, "old")
    commit(old, tmp_path, 20, "old")

    new = manager(uri, attempt=2, keep=1)
    point = new.fetch_newest(tmp_path / "resume")  # the new attempt starts: it registers itself
    assert point is not None and point.step == 20
    commit(new, tmp_path, 30, "new")

    # The old gang, not yet gone, saves step 40 and later 50: nothing becomes committed, and the
    # new attempt's checkpoint-30 survives the old writer's retention (keep=1).
    commit(old, tmp_path, 40, "old")
    commit(old, tmp_path, 50, "old")
    assert old.fenced
    prefix = uri.removeprefix("s3://")
    assert not s3.exists(f"{prefix}/checkpoint-40/manifest.json")
    assert not s3.exists(f"{prefix}/checkpoint-50/manifest.json")
    assert s3.exists(f"{prefix}/checkpoint-30/manifest.json")
    assert [step for step, manifest, _ in new.candidates() if manifest is not None] == [30]
    manifest = parse_manifest(s3.cat_file(f"{prefix}/checkpoint-30/manifest.json").decode(), 30)
    assert manifest.attempt == 2

    # The new attempt's next commit cleans up the old attempt's interrupted uploads below it.
    commit(new, tmp_path, 60, "new")
    assert files_under(s3, f"{prefix}/checkpoint-40") == files_under(s3, f"{prefix}/checkpoint-50") == []
    assert [step for step, manifest, _ in new.candidates() if manifest is not None] == [60]


def test_a_stale_part_of_an_older_attempt_is_never_merged(tmp_path, private_s3, s3_env):
    s3 = private_s3.filesystem()
    uri = f"s3://{private_s3.bucket}/zombies/{uuid.uuid4().hex[:8]}"
    # The old attempt's rank 1 uploaded its share of checkpoint-10 and its part, then its gang died.
    old_rank1 = manager(uri, attempt=1, rank=1, world_size=2)
    commit(old_rank1, tmp_path, 10, "old")

    new_rank0 = manager(uri, attempt=2, rank=0, world_size=2)
    new_rank1 = manager(uri, attempt=2, rank=1, world_size=2)
    new_rank0.submit(local_checkpoint(tmp_path, 10, 2, "new0"), 10, epoch=1.0)
    new_rank1.submit(local_checkpoint(tmp_path, 10, 2, "new1"), 10, epoch=1.0)
    new_rank1.wait(120)
    new_rank0.wait(120)

    prefix = uri.removeprefix("s3://")
    manifest = parse_manifest(s3.cat_file(f"{prefix}/checkpoint-10/manifest.json").decode(), 10)
    assert manifest.attempt == 2
    point = new_rank0.fetch(10, tmp_path / "resume")  # every digest verifies against the bytes in S3
    rng1 = Path(point.local_path) / "rng_state_1.pth"
    assert rng1.read_bytes() == b"new1-rng-1-10" * 8


def test_a_newer_checkpoint_than_the_writers_own_is_kept(tmp_path, private_s3, s3_env):
    s3 = private_s3.filesystem()
    uri = f"s3://{private_s3.bucket}/zombies/{uuid.uuid4().hex[:8]}"
    writer = manager(uri, attempt=3, keep=1)
    other = manager(uri, attempt=3, keep=1)
    commit(other, tmp_path, 90, "other")  # e.g. committed in the one-request window of the fence
    commit(writer, tmp_path, 10, "mine")
    commit(writer, tmp_path, 20, "mine")
    prefix = uri.removeprefix("s3://")
    assert s3.exists(f"{prefix}/checkpoint-90/manifest.json")
    assert s3.exists(f"{prefix}/checkpoint-20/manifest.json")
    assert files_under(s3, f"{prefix}/checkpoint-10") == []


# ---------------------------------------------------------------------------------------------
# A real trainer run through S3 outages


def start_trainer(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "finetune_trainer", "--config", str(config)]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def log_records(log: Path) -> list[dict]:
    return json_lines(log.read_text(errors="replace"))


def retry_count(log: Path) -> int:
    return sum(1 for r in log_records(log) if r.get("msg") == "storage error; retrying")


def retries_logged(log: Path, verb: str | tuple[str, ...]) -> bool:
    return any(
        r.get("msg") == "storage error; retrying" and str(r.get("operation", "")).startswith(verb)
        for r in log_records(log)
    )


def test_the_trainer_rides_out_s3_outages_while_reading_data_and_uploading(tmp_path, private_s3, s3_env):
    model, train = tiny_classification_files(tmp_path / "files")
    s3 = private_s3.filesystem()
    prefix = f"s3://{private_s3.bucket}/outages/{uuid.uuid4().hex[:8]}"
    s3.put_file(str(train), f"{prefix.removeprefix('s3://')}/train.jsonl")
    # The data is read from the store (the model from local disk); 40 steps, a commit every 5.
    spec = classification_spec(
        f"file://{model}", f"{prefix}/train.jsonl", None, f"{prefix}/out", f"{prefix}/ckpt", maxSteps=40
    )
    spec["training"]["evaluation"] = {"strategy": "no"}
    env = trainer_env(tmp_path, **private_s3.env(), FINETUNE_STORAGE_RETRY_SECONDS="300")
    log = tmp_path / "trainer.log"

    # 1. The store is down before the trainer reads its data: it must wait, not exit 78.
    private_s3.stop()
    trainer = start_trainer(write_config(tmp_path / "spec.json", spec), env, log)
    try:
        wait_until(lambda: trainer.poll() is not None or retries_logged(log, "look up"), 300, "a read retry")
        assert trainer.poll() is None, log.read_text()[-3000:]
        private_s3.start()

        # 2. Down again before the next checkpoint, so its upload meets the dead store.
        def committed() -> bool:
            return any(r.get("msg") == "checkpoint committed" for r in log_records(log))

        def trained_past(step: int) -> bool:
            return any(r.get("msg") == "train log" and r.get("step", 0) >= step for r in log_records(log))

        # Killed after step 8: the first commit (step 5) is done, the save of step 10 is to come.
        wait_until(lambda: trainer.poll() is not None or (committed() and trained_past(8)), 300, "step 8")
        before = retry_count(log)
        private_s3.kill()
        # The checkpoint work in flight (upload, part, manifest, retention) meets the dead store.
        wait_until(
            lambda: trainer.poll() is not None or retry_count(log) > before, 300, "a retry after the kill"
        )
        assert trainer.poll() is None, log.read_text()[-3000:]
        private_s3.start()
        code = trainer.wait(300)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    text = log.read_text(errors="replace")
    assert code == 0, text[-4000:]
    records = log_records(log)
    assert not any(r.get("msg") == "invalid configuration or data" for r in records)
    steps = [r["checkpoint_step"] for r in records if r.get("msg") == "checkpoint committed"]
    assert steps and steps[-1] == 40
    # Every checkpoint that exists verifies (digests after download); retention kept the newest two.
    checker = manager(f"{prefix}/ckpt", attempt=99)
    verified = [step for step, manifest, _ in checker.candidates() if manifest is not None]
    assert verified == [40, 35]
    for step in verified:
        checker.fetch(step, tmp_path / "verify")  # raises ManifestError on any digest mismatch


def test_a_store_that_denies_the_credentials_is_a_permanent_failure(tmp_path, private_s3, s3_env):
    """Denied by the store (here: a wrong secret) is not waited out: exit 78 naming the field."""
    model, train = tiny_classification_files(tmp_path / "files")
    prefix = f"s3://{private_s3.bucket}/denied/{uuid.uuid4().hex[:8]}"
    private_s3.filesystem().put_file(str(train), f"{prefix.removeprefix('s3://')}/train.jsonl")
    spec = classification_spec(
        f"file://{model}", f"{prefix}/train.jsonl", None, f"{prefix}/out", f"{prefix}/ckpt", maxSteps=4
    )
    env = trainer_env(tmp_path, **{**private_s3.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    log = tmp_path / "trainer.log"
    trainer = start_trainer(write_config(tmp_path / "spec.json", spec), env, log)
    code = trainer.wait(300)
    assert code == 78, log.read_text()[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert "spec.dataset.train" in message and "denied" in message
    assert retry_count(log) == 0
