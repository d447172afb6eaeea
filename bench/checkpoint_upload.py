"""Checkpoint upload speed: the trainer's upload against a local-disk copy, and what it costs a step.

Why these floors: a checkpoint upload cannot beat copying the same bytes on local disk, so
upload MiB/s over copy MiB/s says how much of the machine's I/O the upload path uses (goal >= 0.8);
and the upload runs beside training, so a training step's time while it runs over a step's time
without it says what the upload steals from training (goal <= 1.05).

What runs, in one process, against a private SeaweedFS (hack/finetune_testkit/private_s3.py: the
cluster's S3 binary and flags, its own port block, so nothing else on the machine is disturbed):

- a checkpoint of the shape trainer_overhead.py's model writes (BERT hidden 256, 4 layers: 8.4 MiB
  of weights, 16.8 MiB of optimizer state and small files), random bytes, scaled by ``--scale``;
- ``localCopy``: ``shutil.copytree`` plus ``os.sync``;
- ``rawPut``: the store's ceiling for any client here: the same bytes as one object, one obstore
  multipart PUT (the trainer's part size and concurrency), nothing hashed, nothing committed;
- ``sequential``: the upload path before this change (hash, then one PUT per file, in turn);
- ``thread`` and ``process``: ``CheckpointManager.submit`` → commit (files, part, fence check,
  manifest, retention), timed by the manager itself (upload start → commit), with the commit on a
  thread of this process (as before) and in the helper process (commit_process.py, the default);
  one manager per variant for all rounds, warmed up by one unmeasured commit;
- step ratio: a small torch model's optimizer steps on the main thread (one intra-op thread) while
  each upload runs in the background, against the same steps with nothing running.

Rounds alternate the variants to spread the machine's noise; medians are reported.

Usage: python bench/checkpoint_upload.py [--rounds 5] [--scale 1.0] [--bucket-uri s3://bucket/prefix]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench import report, stats

# (file name, MiB) of the bench model's HF checkpoint.
CHECKPOINT_SHAPE = (
    ("model.safetensors", 8.4),
    ("optimizer.pt", 16.8),
    ("scheduler.pt", 0.001),
    ("rng_state.pth", 0.014),
    ("trainer_state.json", 0.001),
    ("training_args.bin", 0.005),
)


def write_checkpoint(directory: Path, scale: float) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, mib in CHECKPOINT_SHAPE:
        size = max(int(mib * scale * 2**20), 64)
        (directory / name).write_bytes(os.urandom(size))
        total += size
    return total


def local_copy_seconds(source: Path, work: Path) -> float:
    target = work / f"copy-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    shutil.copytree(source, target)
    os.sync()
    elapsed = time.monotonic() - started
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def sequential_upload_seconds(source: Path, uri: str) -> float:
    """The upload path before concurrency: hash a file, PUT it, next file."""
    import fsspec

    from finetune_trainer import storage

    # The client options of that time: payload signing on (the default over plain http).
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    fs = fsspec.filesystem(
        "s3",
        use_listings_cache=False,
        client_kwargs={"endpoint_url": endpoint} if endpoint else {},
        config_kwargs={"s3": {"addressing_style": "path"}} if endpoint else {},
        skip_instance_cache=True,
    )
    started = time.monotonic()
    for rel, path in storage.walk_files(source):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest
        fs.put_file(str(path), f"{uri.removeprefix('s3://')}/{rel}")
    return time.monotonic() - started


def raw_put_seconds(source: Path, uri: str) -> float:
    """The store's ceiling for this client: the same bytes as one object, one obstore multipart PUT
    with the trainer's part size and concurrency, no hashing, no commit, nothing else running."""
    from finetune_trainer import storage
    from finetune_trainer.upload import UploadTuning

    joined = source.parent / "all-bytes"
    with open(joined, "wb") as out:
        for _, path in storage.walk_files(source):
            out.write(path.read_bytes())
    tuning = UploadTuning.from_env()
    started = time.monotonic()
    storage.upload_file(joined, uri, tuning.part_size, tuning.part_concurrency)
    seconds = time.monotonic() - started
    joined.unlink()
    return seconds


class ManagerUploads:
    """Our trainer's path: one CheckpointManager for all rounds, as a trainer keeps one.

    ``commit_process`` picks where the commit runs: the helper process (the default) or a thread
    of this process (how it ran before). The first (warm-up) commit is submitted from the main
    thread, as the trainer's callback does; it starts the helper process, which is then reused.
    """

    def __init__(self, source: Path, uri: str, commit_process: bool) -> None:
        from finetune_trainer.checkpoints import CheckpointManager
        from finetune_trainer.world import WorldInfo

        self.source = source
        self.step = 0
        self.manager = CheckpointManager(
            uri, 2, WorldInfo(0, 0, 1), "bench", {}, "bench", attempt=1, commit_process=commit_process
        )
        self.upload_seconds()  # warm-up: not measured

    def upload_seconds(self) -> float:
        """Submit a fresh copy of the checkpoint and wait for its commit; upload start → commit."""
        self.step += 1
        staged = self.source.parent / f"checkpoint-{self.step}"
        shutil.copytree(self.source, staged)
        self.manager.submit(staged, self.step, epoch=0.0)
        self.manager.wait(600)
        assert self.manager.last_commit is not None
        return self.manager.last_commit.upload_seconds

    def close(self) -> None:
        self.manager.close()


class StepLoop:
    """Optimizer steps of a small torch MLP on the calling thread (the training thread's stand-in)."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        torch.manual_seed(0)
        self.torch = torch
        self.model = torch.nn.Sequential(*[torch.nn.Linear(128, 128) for _ in range(6)])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.batch = torch.randn(16, 128)

    def step(self) -> float:
        started = time.perf_counter()
        self.optimizer.zero_grad()
        self.model(self.batch).pow(2).mean().backward()
        self.optimizer.step()
        return time.perf_counter() - started

    def alone(self, count: int = 200) -> float:
        return statistics.median(self.step() for _ in range(count))

    def beside(self, work: Callable[[], float]) -> tuple[float, float]:
        """(median step seconds while ``work`` runs in a thread, the work's own result)."""
        done = threading.Event()
        result: list[float] = []

        def background() -> None:
            try:
                result.append(work())
            finally:
                done.set()

        thread = threading.Thread(target=background, daemon=True)
        thread.start()
        times = []
        while not done.is_set():
            times.append(self.step())
        thread.join()
        if not result:
            raise RuntimeError("the background upload failed; see the log above")
        return statistics.median(times), result[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="checkpoint size factor (1.0: 25 MiB)")
    parser.add_argument(
        "--bucket-uri",
        help="upload to this s3://bucket/prefix (credentials and endpoint from the AWS_* variables) "
        "instead of a private SeaweedFS",
    )
    args = parser.parse_args(argv)

    from finetune_testkit.private_s3 import PrivateS3

    work = Path(tempfile.mkdtemp(prefix="bench-ckpt-upload-"))
    server = None if args.bucket_uri else PrivateS3(work / "s3")
    try:
        if server is not None:
            report.progress(f"starting a private S3 at {server.endpoint}")
            server.start()
            os.environ.update(server.env())
            base = f"s3://{server.bucket}/bench-upload/{uuid.uuid4().hex[:8]}"
        else:
            base = f"{args.bucket_uri.rstrip('/')}/bench-upload/{uuid.uuid4().hex[:8]}"
        source = work / "local" / "source"
        size = write_checkpoint(source, args.scale)
        mib = size / 2**20
        loop = StepLoop()
        managers = {
            "thread": ManagerUploads(source, f"{base}/thread", commit_process=False),
            "process": ManagerUploads(source, f"{base}/process", commit_process=True),
        }
        copy_s, seq_s, raw_s = [], [], []
        step_alone, step_seq = [], []
        upload_s: dict[str, list[float]] = {name: [] for name in managers}
        step_during: dict[str, list[float]] = {name: [] for name in managers}
        for round_ in range(args.rounds):
            report.progress(f"round {round_ + 1}/{args.rounds} ({mib:.1f} MiB)")
            copy_s.append(local_copy_seconds(source, work / "local"))
            raw_s.append(raw_put_seconds(source, f"{base}/raw-{round_}"))
            step_alone.append(loop.alone())
            during, seconds = loop.beside(
                lambda r=round_: sequential_upload_seconds(source, f"{base}/seq-{r}")
            )
            step_seq.append(during)
            seq_s.append(seconds)
            for name, uploads in managers.items():
                during, seconds = loop.beside(uploads.upload_seconds)
                step_during[name].append(during)
                upload_s[name].append(seconds)
            step_alone.append(loop.alone())
        for uploads in managers.values():
            uploads.close()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    def rate(seconds: list[float]) -> float:
        return round(mib / statistics.median(seconds), 1)

    alone = statistics.median(step_alone)
    result = {
        "checkpointMiB": round(mib, 1),
        "rounds": args.rounds,
        "localCopyMiBPerSecond": rate(copy_s),
        "rawPutMiBPerSecond": rate(raw_s),
        "ratioRawPutOverLocalCopy": stats.ratio(rate(raw_s), rate(copy_s), 3),
        "sequentialUploadMiBPerSecond": rate(seq_s),
        "ratioSequentialOverLocalCopy": stats.ratio(rate(seq_s), rate(copy_s), 3),
        "stepSecondsAlone": round(alone, 6),
        "stepSecondsWhileSequentialUpload": round(statistics.median(step_seq), 6),
        "ratioStepWhileSequentialUpload": stats.ratio(statistics.median(step_seq), alone, 3),
    }
    for name, label in (("thread", "Thread"), ("process", "")):
        during = statistics.median(step_during[name])
        result[f"uploadMiBPerSecond{label}"] = rate(upload_s[name])
        result[f"ratioUploadOverLocalCopy{label}"] = stats.ratio(rate(upload_s[name]), rate(copy_s), 3)
        result[f"ratioUploadOverRawPut{label}"] = stats.ratio(rate(upload_s[name]), rate(raw_s), 3)
        result[f"stepSecondsWhileUploading{label}"] = round(during, 6)
        result[f"ratioStepWhileUploading{label}"] = stats.ratio(during, alone, 3)
    result["machineLoadAverage1m"] = round(os.getloadavg()[0], 2)
    return result


def summary_table(result: dict[str, Any]) -> str:
    r = result
    rows = [
        ["local-disk copy MiB/s (floor)", r["localCopyMiBPerSecond"], ""],
        [
            "store ceiling: one raw PUT of the same bytes",
            r["rawPutMiBPerSecond"],
            r["ratioRawPutOverLocalCopy"],
        ],
        ["upload MiB/s, before", r["sequentialUploadMiBPerSecond"], r["ratioSequentialOverLocalCopy"]],
        [
            "upload MiB/s, commit on a thread",
            r["uploadMiBPerSecondThread"],
            r["ratioUploadOverLocalCopyThread"],
        ],
        ["upload MiB/s, commit process (now)", r["uploadMiBPerSecond"], r["ratioUploadOverLocalCopy"]],
        ["step s alone", r["stepSecondsAlone"], ""],
        [
            "step s while uploading, before",
            r["stepSecondsWhileSequentialUpload"],
            r["ratioStepWhileSequentialUpload"],
        ],
        [
            "step s while uploading, commit on a thread",
            r["stepSecondsWhileUploadingThread"],
            r["ratioStepWhileUploadingThread"],
        ],
        [
            "step s while uploading, commit process (now)",
            r["stepSecondsWhileUploading"],
            r["ratioStepWhileUploading"],
        ],
    ]
    return report.table(["checkpoint upload", "value", "ratio"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("checkpoint_upload", outcome, summary_table(outcome))
