"""Only committed, intact checkpoints are resumed from (docs/architecture.md, "Checkpoint commit
protocol"), against the real S3 server.

Checkpoints are laid out by the manager's own upload path, then damaged the ways real failures
damage them: an upload that never wrote its manifest, a file whose size differs from the manifest,
and a file whose bytes differ at the same size (caught only by the sha256 after download).
"""

from __future__ import annotations

import logging
import uuid

from finetune_trainer.checkpoints import CheckpointManager
from finetune_trainer.distributed import WorldInfo


def make_checkpoint(root, step: int) -> str:
    directory = root / f"checkpoint-{step}"
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(bytes([step % 251]) * 4096)
    (directory / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    return str(directory)


def test_newest_verified_checkpoint_skips_partial_and_corrupt(
    tmp_path, s3_bucket, s3, cluster_env, monkeypatch, caplog
):
    for key, value in cluster_env.items():
        monkeypatch.setenv(key, value)
    uri = f"s3://{s3_bucket}/trainer-tests/{uuid.uuid4().hex[:10]}/ckpt"
    manager = CheckpointManager(uri, keep=10, world=WorldInfo(0, 0, 1), config_hash="h", versions={}, job="t")
    for step in (10, 20, 30, 40):
        manager.submit(make_checkpoint(tmp_path / "local", step), step, epoch=step / 10)
        manager.wait()
    bucket_path = uri.removeprefix("s3://")
    s3.rm(f"{bucket_path}/checkpoint-40/manifest.json")  # upload never committed
    s3.pipe_file(f"{bucket_path}/checkpoint-30/model.safetensors", b"x" * 10)  # size differs
    s3.pipe_file(f"{bucket_path}/checkpoint-20/model.safetensors", b"\xff" * 4096)  # same size, other bytes

    with caplog.at_level(logging.WARNING, logger="finetune_trainer.checkpoints"):
        point = manager.fetch_newest(tmp_path / "resume")

    assert point is not None and point.step == 10
    assert (tmp_path / "resume" / "checkpoint-10" / "model.safetensors").read_bytes() == bytes([10]) * 4096
    reasons = {
        r.fields["checkpoint_step"]: r.fields["reason"] for r in caplog.records if hasattr(r, "fields")
    }
    assert "no manifest" in reasons[40]
    assert "bytes" in reasons[30]
    assert "sha256" in reasons[20]
