"""DDP against FSDP at world size 2 on CPU: peak memory per rank and steps/s of the same job.

Why this comparison: FSDP exists to cut each rank's memory (weights, gradients and Adam state
sharded over the ranks: 16 bytes per parameter become 16/N, see docs/trainer.md "DDP, FSDP or
QLoRA"), paid for with all-gathers and reduce-scatters. Both runs are our trainer under torchrun
with gloo on 127.0.0.1, the same GPT-2-style model (built from a config, no Hub), data, batch and
steps; only ``training.distribution.strategy`` differs. Peak RSS is the kernel's high-water mark
of each worker process (``ru_maxrss``, written at exit by hack/finetune_testkit/fsdp_gang.py), so it
includes Python, torch and the initial full-model load that FSDP then shards; steps/s comes from
the trainer's own JSON log lines (first step excluded). Storage is file:// (no cluster needed).
No GPU figures: this runs on CPU only.

The default model (hidden 512, 6 layers: about 19 M parameters, 300 MB of weights, gradients and
Adam state under DDP) is the smallest that shows the difference clearly on top of the fixed cost
of Python and torch, and both runs finish in a few minutes on a small CPU machine.

Usage: python bench/fsdp.py [--hidden 512] [--layers 6] [--steps 6]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import tempfile
import time
from typing import Any

from bench import report

REPO_ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("ddp", "fsdp")


def write_model(directory: Path, hidden: int, layers: int) -> Path:
    """The tests' word-level GPT-2, widened and deepened to ``hidden`` x ``layers``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune_testkit.trainer_helpers import write_tiny_gpt2

    write_tiny_gpt2(directory)
    small = GPT2Config.from_pretrained(str(directory))
    config = GPT2Config(
        vocab_size=small.vocab_size, n_embd=hidden, n_layer=layers, n_head=max(hidden // 64, 1),
        n_positions=64, bos_token_id=2, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(str(directory))
    return directory


def job_spec(model: Path, train: Path, out: Path, strategy: str, steps: int) -> dict[str, Any]:
    return {
        "model": {"uri": f"file://{model}", "task": "causal-lm"},
        "dataset": {"train": f"file://{train}", "maxLength": 16, "split": {"validation": 0.0}},
        "training": {
            "maxSteps": steps, "batchSizePerDevice": 2, "learningRate": 1e-4, "loggingSteps": 1,
            "evaluation": {"strategy": "no"}, "distribution": {"strategy": strategy},
        },
        "checkpoint": {"uri": f"file://{out}/ckpt", "everySteps": 10**9},
        "output": {"uri": f"file://{out}/out"},
    }  # fmt: skip


def measure(work: Path, hidden: int, layers: int, steps: int) -> dict[str, Any]:
    """One DDP and one FSDP run of the same job; peak RSS per rank and steps/s of each."""
    from finetune_testkit.fsdp_gang import read_peak_rss, run_gang
    from finetune_testkit.trainer_helpers import (
        json_lines,
        sft_records,
        trainer_env,
        write_config,
        write_jsonl,
    )

    model = write_model(work / "model", hidden, layers)
    train = write_jsonl(work / "train.jsonl", sft_records(64))
    runs: dict[str, Any] = {}
    for strategy in STRATEGIES:
        directory = work / strategy
        directory.mkdir(parents=True, exist_ok=True)
        config = write_config(directory / "job.json", job_spec(model, train, directory, strategy, steps))
        env = trainer_env(directory, GLOO_SOCKET_IFNAME="lo")
        log = directory / "gang.log"
        started = time.monotonic()
        code = run_gang(config, env, log, peak_rss_dir=directory / "rss")
        if code != 0:
            raise RuntimeError(f"{strategy} run failed ({code}): {log.read_text()[-3000:]}")
        records = json_lines(log.read_text())
        times = [r["time"] for r in records if r.get("msg") == "train log" and "loss" in r]
        plan = next(r for r in records if r.get("msg") == "distribution strategy")
        runs[strategy] = {
            "strategy": plan["strategy"],
            "parameters": plan["parameters"],
            "peakRssBytesPerRank": read_peak_rss(directory / "rss"),
            "stepsPerSecond": _steps_per_second(times),
            "wallSeconds": round(time.monotonic() - started, 1),
        }
    ratio = {
        rank: round(runs["fsdp"]["peakRssBytesPerRank"][rank] / runs["ddp"]["peakRssBytesPerRank"][rank], 3)
        for rank in runs["ddp"]["peakRssBytesPerRank"]
    }
    return {
        "worldSize": 2,
        "device": "cpu (gloo on 127.0.0.1)",
        "model": {"hidden": hidden, "layers": layers, "parameters": runs["ddp"]["parameters"]},
        "steps": steps,
        "runs": runs,
        "peakRssRatioFsdpOverDdp": ratio,
        "stepsPerSecondRatioFsdpOverDdp": round(
            runs["fsdp"]["stepsPerSecond"] / runs["ddp"]["stepsPerSecond"], 3
        ),
    }


def _steps_per_second(times: list[str]) -> float:
    """Steps per second between the first and the last logged step (the first step's warm-up out)."""
    from datetime import datetime

    stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times]
    if len(stamps) < 2:
        return float("nan")
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 4)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=512, help="model width")
    parser.add_argument("--layers", type=int, default=6, help="transformer blocks")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="bench-fsdp-") as work:
        return measure(Path(work), args.hidden, args.layers, args.steps)


def summary_table(result: dict[str, Any]) -> str:
    ddp, fsdp = result["runs"]["ddp"], result["runs"]["fsdp"]
    mib = 1024 * 1024
    rows = [[f"peak RSS MiB, rank {rank}", round(ddp["peakRssBytesPerRank"][rank] / mib),
             round(fsdp["peakRssBytesPerRank"][rank] / mib), result["peakRssRatioFsdpOverDdp"][rank]]
            for rank in sorted(ddp["peakRssBytesPerRank"])]  # fmt: skip
    rows.append(
        ["steps/s", ddp["stepsPerSecond"], fsdp["stepsPerSecond"], result["stepsPerSecondRatioFsdpOverDdp"]]
    )
    return report.table(["measure (world size 2, CPU)", "ddp", "fsdp", "fsdp / ddp"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("fsdp", outcome, summary_table(outcome))
    print(json.dumps(outcome["peakRssRatioFsdpOverDdp"]), file=sys.stderr)
