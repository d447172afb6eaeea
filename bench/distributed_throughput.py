"""What the gang costs: samples/s of 2 workers against 1 worker and the plain HF script, same global batch.

Why: a 2-worker job all-reduces its gradients with gloo over loopback at every step; whether that
costs 5% or 50% against one worker with the same global batch (and against HF's Trainer alone)
should be a measured figure. Every run gets the same CPU budget, the way a pod would:
``FINETUNE_CPU_LIMIT`` CPUs, which the launcher shares among its workers (2 workers x 1 thread
against 1 worker x 2 threads; the plain script gets OMP_NUM_THREADS equal to the budget). The two
workers run exactly as on the local process node: ``finetune_trainer.launch`` around torchrun,
gloo over 127.0.0.1. Runs alternate (plain, one, two) to spread the machine's noise; medians.

Usage: python bench/distributed_throughput.py [--steps 120] [--batch 16] [--cpus 2] [--repeats 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import subprocess
import tempfile
import time
from typing import Any

from bench import report, stats, trainer_logs
from bench.trainer_overhead import OPTIMIZER, prepare

REPO_ROOT = Path(__file__).resolve().parents[1]


def spec_for(model: Path, data: Path, work: Path, steps: int, per_device: int) -> dict[str, Any]:
    return {
        "model": {"uri": f"file://{model}", "task": "sequence-classification", "numLabels": 2},
        "dataset": {"train": f"file://{data}", "maxLength": 16, "split": {"validation": 0.0, "test": 0.0}},
        "training": {
            "epochs": 1000, "maxSteps": steps, "batchSizePerDevice": per_device, "learningRate": 5e-3,
            "optimizer": OPTIMIZER, "loggingSteps": 10, "seed": 0, "evaluation": {"strategy": "no"},
        },
        "output": {"uri": f"file://{work}/out"},
    }  # fmt: skip


def base_env(work: Path, cpus: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", FINETUNE_METRICS_PORT="0",
        TOKENIZERS_PARALLELISM="false",
        FINETUNE_TERMINATION_LOG=str(work / "termination-log"), FINETUNE_JOB_NAME="bench",
        FINETUNE_CPU_LIMIT=str(cpus), PYTHONUNBUFFERED="1", GLOO_SOCKET_IFNAME="lo",
    )  # fmt: skip
    env.pop("FINETUNE_JOB_SPEC", None)
    return env


def run_ours(work: Path, name: str, spec: dict[str, Any], env: dict[str, str], workers: int) -> float:
    run_dir = work / name
    run_dir.mkdir()
    config = run_dir / "spec.json"
    config.write_text(json.dumps(spec))
    command = [
        sys.executable, "-m", "finetune_trainer.launch", "--nnodes=1", f"--nproc-per-node={workers}",
        "--master-addr=127.0.0.1", f"--master-port={29700 + workers}", "-m", "finetune_trainer",
        "--config", str(config),
    ]  # fmt: skip
    result = subprocess.run(
        command, env={**env, "FINETUNE_WORK_DIR": str(run_dir / "work")}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    (run_dir / "stderr.log").write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{name} exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    finished = trainer_logs.first_record(trainer_logs.json_lines(result.stderr), "training finished")
    if not finished:
        raise RuntimeError(f"{name}: no 'training finished' line; see {run_dir / 'stderr.log'}")
    return float(finished["train_runtime_seconds"])


def run_plain(
    work: Path, env: dict[str, str], model: Path, data: Path, steps: int, batch: int, cpus: int
) -> float:
    argv = [sys.executable, str(REPO_ROOT / "bench" / "plain_hf_train.py"), str(model), str(data)]
    argv += [str(steps), str(batch), "10", str(work / f"plain-{time.monotonic_ns()}"), OPTIMIZER]
    threads = {"OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus)}
    result = subprocess.run(
        argv, env={**env, **threads}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"the plain HF script exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return float(trainer_logs.json_lines(result.stdout)[-1]["train_runtime_seconds"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per run (default 120)")
    parser.add_argument("--batch", type=int, default=16, help="global batch (default 16)")
    parser.add_argument("--cpus", type=int, default=2, help="CPU budget of every run (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (plain, one, two) (default 2)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    seconds: dict[str, list[float]] = {"plain": [], "oneWorker": [], "twoWorkers": []}
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        model, data = prepare(work, 256, 4, records=max(400, args.steps * args.batch // 2))
        env = base_env(work, args.cpus)
        for repeat in range(args.repeats):
            report.progress(f"round {repeat + 1}/{args.repeats}: plain HF script, one worker, two workers")
            seconds["plain"].append(run_plain(work, env, model, data, args.steps, args.batch, args.cpus))
            one = spec_for(model, data, work / f"one-{repeat}", args.steps, args.batch)
            seconds["oneWorker"].append(run_ours(work, f"one-{repeat}", one, env, 1))
            two = spec_for(model, data, work / f"two-{repeat}", args.steps, args.batch // 2)
            seconds["twoWorkers"].append(run_ours(work, f"two-{repeat}", two, env, 2))
    rates = {k: stats.summarize([args.steps * args.batch / s for s in v]) for k, v in seconds.items()}
    return {
        "benchmark": "distributed_throughput",
        "model": {"hidden": 256, "layers": 4, "maxLength": 16, "optimizer": OPTIMIZER},
        "steps": args.steps,
        "globalBatch": args.batch,
        "cpuBudget": args.cpus,
        "samplesPerSecond": rates,
        "ratioTwoWorkersOverOne": stats.ratio(rates["twoWorkers"]["p50"], rates["oneWorker"]["p50"], 3),
        "ratioTwoWorkersOverPlain": stats.ratio(rates["twoWorkers"]["p50"], rates["plain"]["p50"], 3),
        "ratioOneWorkerOverPlain": stats.ratio(rates["oneWorker"]["p50"], rates["plain"]["p50"], 3),
        "wallSeconds": round(time.monotonic() - started, 1),
    }


def summary_table(result: dict[str, Any]) -> str:
    sps = result["samplesPerSecond"]
    rows = [
        ["samples/s, plain HF Trainer script (1 process)", sps["plain"]["p50"]],
        ["samples/s, ours, 1 worker", sps["oneWorker"]["p50"]],
        ["samples/s, ours, 2 workers (gloo over loopback)", sps["twoWorkers"]["p50"]],
        ["ratio 2 workers / 1 worker", result["ratioTwoWorkersOverOne"]],
        ["ratio 2 workers / plain", result["ratioTwoWorkersOverPlain"]],
        ["ratio 1 worker / plain", result["ratioOneWorkerOverPlain"]],
    ]
    return report.table(["measure (p50)", "value"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("distributed_throughput", outcome, summary_table(outcome))
