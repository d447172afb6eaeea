"""The checkpoint commit in its helper process (commit_process.py), on a local file:// store.

Real processes and real files: the manager starts the real child (`python -m
finetune_trainer.commit_process`), which commits with the same code as the in-thread path; only
the store is a local directory instead of S3 (the S3 path is covered by the integration tests,
which use the commit process by default).
"""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import pytest

from finetune_trainer.checkpoints import CheckpointManager, CommitRecord
from finetune_trainer.commit_process import serve
from finetune_trainer.world import WorldInfo


def local_checkpoint(root: Path, step: int) -> Path:
    directory = root / f"checkpoint-{step}"
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(bytes([step % 251]) * 4096)
    (directory / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return directory


def manager(store: Path, **kwargs) -> CheckpointManager:
    return CheckpointManager(f"file://{store}", 2, WorldInfo(0, 0, 1), "h", {}, "job", attempt=1, **kwargs)


def test_commits_in_the_child_report_back_as_if_made_here(tmp_path: Path) -> None:
    committed: list[CommitRecord] = []
    uploads: list[tuple[float, int]] = []
    ckpt = manager(
        tmp_path / "store", on_commit=committed.append, on_upload=lambda s, b: uploads.append((s, b))
    )
    for step in (5, 10, 15):
        ckpt.submit(local_checkpoint(tmp_path / "local", step), step, epoch=step / 5)
        ckpt.wait(60)
    child = ckpt._commit_process._proc  # the real child, to check it exits
    ckpt.close()
    assert [record.step for record in committed] == [5, 10, 15]
    assert ckpt.last_commit == committed[-1]
    assert len(uploads) == 3 and all(size == 4096 + len('{"global_step": 5}') for _, size in uploads[:1])
    assert sorted(p.name for p in (tmp_path / "store").iterdir() if p.name.startswith("checkpoint-")) == [
        "checkpoint-10",
        "checkpoint-15",
    ]  # keep 2: retention ran in the child after the newer commit
    manifest = json.loads((tmp_path / "store" / "checkpoint-15" / "manifest.json").read_text())
    assert manifest["step"] == 15 and manifest["attempt"] == 1
    assert not (tmp_path / "local" / "checkpoint-15").exists()  # the local copy is removed after commit
    assert child is not None and child.poll() == 0


def test_the_child_ignores_sigterm_so_the_last_checkpoint_still_commits(tmp_path: Path) -> None:
    ckpt = manager(tmp_path / "store")
    ckpt.submit(local_checkpoint(tmp_path / "local", 1), 1, epoch=0.0)
    ckpt.wait(60)
    child = ckpt._commit_process._proc
    assert child is not None
    os.kill(child.pid, signal.SIGTERM)  # as when the pod's whole process group is signalled
    ckpt.submit(local_checkpoint(tmp_path / "local", 2), 2, epoch=0.0)
    ckpt.wait(60)
    ckpt.close()
    assert ckpt.last_commit is not None and ckpt.last_commit.step == 2


def test_a_failed_commit_is_raised_on_the_training_thread_with_the_childs_reason(tmp_path: Path) -> None:
    ckpt = manager(tmp_path / "store")
    ckpt.submit(tmp_path / "missing" / "checkpoint-3", 3, epoch=0.0)
    with pytest.raises(
        RuntimeError, match=r"checkpoint upload to file://.* failed: .*checkpoint-3 holds no files"
    ):
        ckpt.wait(60)
    ckpt.submit(local_checkpoint(tmp_path / "local", 4), 4, epoch=0.0)  # the child is still usable
    ckpt.wait(60)
    ckpt.close()
    assert ckpt.last_commit is not None and ckpt.last_commit.step == 4


def test_serve_speaks_one_json_line_per_checkpoint(tmp_path: Path) -> None:
    settings = manager(tmp_path / "store", commit_process=False)._child_settings()
    local = local_checkpoint(tmp_path / "local", 7)
    requests = io.StringIO(
        json.dumps(settings) + "\n" + json.dumps({"localDir": str(local), "step": 7, "epoch": 1.0}) + "\n"
    )
    replies = io.StringIO()
    serve(requests, replies)
    ready, reply = (json.loads(line) for line in replies.getvalue().splitlines())
    assert ready == {"ready": True}
    assert reply["commit"]["step"] == 7 and reply["fenced"] is False
    assert reply["upload"][1] == reply["commit"]["bytes"]
