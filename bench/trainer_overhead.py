"""Trainer overhead on CPU: our trainer against a plain HF Trainer script, and what checkpoints cost.

Why these floors: the plain script (bench/plain_hf_train.py) is HF's Trainer with nothing of ours,
on the same model, data, batch and steps: steps/s ours over steps/s plain is our per-step overhead.
Checkpointing is measured against our own trainer with checkpoints off (everySteps past the end):
the step time while an upload runs over the step time with no checkpointing shows how well the
background upload hides; the upload's throughput is set against a plain local-disk copy of the
same bytes (the committed checkpoint, downloaded again).

Runs (each a subprocess, OMP_NUM_THREADS=1, HF offline, alternated to spread the machine's noise):
plain and ours at loggingSteps 10 (steps/s), then ours at loggingSteps 1 without and with
checkpoints every K steps to the local S3 (per-step times from the JSON log lines).

Usage: python bench/trainer_overhead.py [--steps 200] [--every 40] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from typing import Any

from bench import report, stats, trainer_logs
from bench.cluster_session import BenchCluster

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH = 8
OPTIMIZER = "adamw_torch_fused"  # the same on both sides (see bench/plain_hf_train.py)


def prepare(work: Path, hidden: int, layers: int, records: int) -> tuple[Path, Path]:
    """The tiny BERT (built from a config, no Hub) and learnable data the trainer tests use."""
    from finetune_testkit.trainer_helpers import sentiment_records, write_jsonl, write_tiny_bert

    model = write_tiny_bert(work / "model", layers=layers, hidden=hidden)
    data = write_jsonl(work / "train.jsonl", sentiment_records(records, seed=1))
    return model, data


def run_env(work: Path, cluster_env: dict[str, str]) -> dict[str, str]:
    env = {**cluster_env}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "FINETUNE_METRICS_PORT": "0",
            "FINETUNE_TERMINATION_LOG": str(work / "termination-log"),
            "FINETUNE_JOB_NAME": "bench",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("FINETUNE_JOB_SPEC", None)
    return env


def ours_spec(model: Path, data: Path, out_uri: str, ckpt_uri: str, steps: int, every: int, logging: int):
    return {
        "model": {"uri": f"file://{model}", "task": "sequence-classification", "numLabels": 2},
        "dataset": {"train": f"file://{data}", "maxLength": 16, "split": {"validation": 0.0, "test": 0.0}},
        "training": {
            "epochs": 1000,
            "maxSteps": steps,
            "batchSizePerDevice": BATCH,
            "learningRate": 5e-3,
            "optimizer": OPTIMIZER,
            "loggingSteps": logging,
            "seed": 0,
            "evaluation": {"strategy": "no"},
        },
        "checkpoint": {"uri": ckpt_uri, "everySteps": every, "keep": 2},
        "output": {"uri": out_uri},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    }


def run_ours(work: Path, env: dict[str, str], spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    run_dir = work / name
    run_dir.mkdir()
    config = run_dir / "spec.json"
    config.write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "finetune_trainer", "--config", str(config)],
        env={**env, "FINETUNE_WORK_DIR": str(run_dir / "work")},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    (run_dir / "stderr.log").write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(
            f"our trainer ({name}) exited {result.returncode}; see {run_dir / 'stderr.log'}: "
            f"{result.stderr.strip()[-1500:]}"
        )
    return trainer_logs.json_lines(result.stderr)


def run_plain(work: Path, env: dict[str, str], model: Path, data: Path, steps: int, logging: int) -> float:
    out = work / f"plain-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, str(REPO_ROOT / "bench" / "plain_hf_train.py"), str(model), str(data)]
    argv += [str(steps), str(BATCH), str(logging), str(out), OPTIMIZER]
    result = subprocess.run(
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"the plain HF script exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return float(trainer_logs.json_lines(result.stdout)[-1]["train_runtime_seconds"])


def train_seconds(records: list[dict[str, Any]]) -> float:
    finished = trainer_logs.first_record(records, "training finished")
    if not finished or "train_runtime_seconds" not in finished:
        raise RuntimeError("our trainer's log has no 'training finished' line with train_runtime_seconds")
    return float(finished["train_runtime_seconds"])


def copy_throughput(fs: Any, ckpt_uri: str, step: int, work: Path) -> dict[str, Any]:
    """Download the committed checkpoint (S3 -> disk), then copy the same bytes disk -> disk."""
    path = f"{ckpt_uri.removeprefix('s3://')}/checkpoint-{step}"
    downloaded = work / "downloaded"
    started = time.monotonic()
    fs.get(path, str(downloaded), recursive=True)
    download_seconds = time.monotonic() - started
    size = sum(p.stat().st_size for p in downloaded.rglob("*") if p.is_file())
    started = time.monotonic()
    shutil.copytree(downloaded, work / "copied")
    os.sync()
    copy_seconds = time.monotonic() - started
    return {
        "bytes": size,
        "s3DownloadMiBPerSecond": stats.per_second(size / 2**20, download_seconds),
        "localCopyMiBPerSecond": stats.per_second(size / 2**20, copy_seconds),
        "localCopySeconds": round(copy_seconds, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run (default 200)")
    parser.add_argument("--every", type=int, default=40, help="checkpoint every K steps (default 40)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the tiny BERT (default 256)")
    parser.add_argument("--layers", type=int, default=4, help="layers of the tiny BERT (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="plain/ours pairs for steps/s (default 2)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with BenchCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        work = Path(tmp)
        env = run_env(work, cluster.env())
        model, data = prepare(work, args.hidden, args.layers, records=max(400, args.steps * BATCH // 2))
        bucket = env.get("S3_BUCKET", "finetune")
        prefix = f"s3://{bucket}/bench/trainer-{uuid.uuid4().hex[:8]}"
        try:
            never = 10**9
            plain, ours = [], []
            for repeat in range(args.repeats):
                report.progress(f"steps/s pair {repeat + 1}/{args.repeats}: plain HF Trainer, then ours")
                plain.append(run_plain(work, env, model, data, args.steps, 10))
                spec = ours_spec(
                    model, data, f"{prefix}/out-{repeat}", f"{prefix}/none-{repeat}", args.steps, never, 10
                )
                ours.append(train_seconds(run_ours(work, env, spec, f"ours-{repeat}")))
            report.progress("step times: ours without checkpoints, loggingSteps 1")
            spec = ours_spec(model, data, f"{prefix}/out-a", f"{prefix}/none-a", args.steps, never, 1)
            baseline = trainer_logs.step_log_times(run_ours(work, env, spec, "ours-no-ckpt"))
            report.progress(f"step times: ours with a checkpoint every {args.every} steps to S3")
            ckpt_uri = f"{prefix}/ckpt"
            spec = ours_spec(model, data, f"{prefix}/out-b", ckpt_uri, args.steps, args.every, 1)
            records = run_ours(work, env, spec, "ours-ckpt")
            times = trainer_logs.step_log_times(records)
            found = trainer_logs.commits(records)
            classes = trainer_logs.classify_steps(trainer_logs.step_durations(times), times, found)
            without = list(trainer_logs.step_durations(baseline).values())
            copy = copy_throughput(cluster.s3(), ckpt_uri, found[-1].step, work) if found else {}
        finally:  # also after a failed run: leave the bucket as found
            with contextlib.suppress(FileNotFoundError):
                cluster.s3().rm(prefix.removeprefix("s3://"), recursive=True)

    plain_rate = [args.steps / s for s in plain]
    ours_rate = [args.steps / s for s in ours]
    upload_rates = [c.bytes / 2**20 / c.upload_seconds for c in found if c.upload_seconds > 0]
    step_p50 = stats.summarize(without)["p50"]
    during_p50 = stats.summarize(classes.during_upload)["p50"]
    upload_mib_s = stats.summarize(upload_rates)["p50"]
    result = {
        "benchmark": "trainer_overhead",
        "model": {
            "hidden": args.hidden,
            "layers": args.layers,
            "batch": BATCH,
            "maxLength": 16,
            "optimizer": OPTIMIZER,
        },
        "steps": args.steps,
        "stepsPerSecond": {
            "plainHfTrainer": stats.summarize(plain_rate),
            "ours": stats.summarize(ours_rate),
            "ratioOursOverPlain": stats.ratio(
                stats.summarize(ours_rate)["p50"], stats.summarize(plain_rate)["p50"], 3
            ),
        },
        "checkpointing": {
            "everySteps": args.every,
            "commits": len(found),
            "checkpointBytes": found[-1].bytes if found else None,
            "stepSecondsWithoutCheckpointing": stats.summarize(without, 4),
            "stepSecondsNoUploadRunning": stats.summarize(classes.without_upload, 4),
            "stepSecondsWhileUploading": stats.summarize(classes.during_upload, 4),
            "stepSecondsCarryingLocalSave": stats.summarize(classes.after_save, 4),
            "ratioWhileUploadingOverWithout": stats.ratio(during_p50, step_p50, 3),
            "commitLatencySeconds": stats.summarize(classes.commit_latency),
            "uploadToCommitSeconds": stats.summarize([c.upload_seconds for c in found]),
            "uploadMiBPerSecond": stats.summarize(upload_rates),
            "sameBytes": copy,
            "ratioUploadOverLocalCopy": stats.ratio(upload_mib_s, copy.get("localCopyMiBPerSecond"), 3),
        },
        "wallSeconds": round(time.monotonic() - started, 1),
    }
    return result


def summary_table(result: dict[str, Any]) -> str:
    sps, ck = result["stepsPerSecond"], result["checkpointing"]
    rows = [
        ["steps/s, plain HF Trainer (floor)", sps["plainHfTrainer"]["p50"]],
        ["steps/s, ours", sps["ours"]["p50"]],
        ["ratio ours / plain", sps["ratioOursOverPlain"]],
        ["step s, no checkpointing (floor)", ck["stepSecondsWithoutCheckpointing"]["p50"]],
        ["step s, while an upload runs", ck["stepSecondsWhileUploading"]["p50"]],
        ["ratio while uploading / without", ck["ratioWhileUploadingOverWithout"]],
        ["step s, step carrying the local save", ck["stepSecondsCarryingLocalSave"]["p50"]],
        ["commit latency s (step -> manifest)", ck["commitLatencySeconds"]["p50"]],
        ["upload MiB/s to S3", ck["uploadMiBPerSecond"]["p50"]],
        ["local disk copy MiB/s (floor)", ck["sameBytes"].get("localCopyMiBPerSecond")],
        ["ratio upload / local copy", ck["ratioUploadOverLocalCopy"]],
    ]
    return report.table(["measure (p50)", "value"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("trainer_overhead", outcome, summary_table(outcome))
