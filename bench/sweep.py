"""`make bench` part: the FineTuneSweep controller's decision cost, measured on its pure pass.

What it measures (JSON on stdout, no timed assertions): a TPE sweep with the median pruner is driven
through `plan_pass` exactly as the controller drives it, with trials whose evaluation curves follow
a made-up landscape; per trial it records the operator CPU spent deciding (suggestions, study
rebuilds, pruning), and how many passes separate a trial's end from the next trial's creation (0:
the same pass that sees a trial finish records and creates its successor, so the gap is one watch
event plus one pass). Not measured here: the same on the real cluster with real training, and the
12-trial TPE vs default-hyperparameters macro-F1 comparison of issue 15 (not yet written).

Usage: python bench/sweep.py [--trials 40] [--algorithm tpe]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import itertools
import json
import math
import resource
import time
from datetime import UTC, datetime
from typing import Any

from finetune_operator.sweep.plan import plan_pass

NOW = datetime(2026, 3, 1, tzinfo=UTC)
EVALUATIONS = 5
TEMPLATE = {
    "model": {"uri": "file:///models/tiny", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "file:///data/train.jsonl", "validation": "file:///data/val.jsonl"},
    "training": {"maxSteps": 50, "evaluation": {"strategy": "steps", "everySteps": 10, "metric": "loss"}},
    "output": {"uri": "file:///out/bench"},
}


def _loss(parameters: dict[str, Any], evaluation: int) -> float:
    """A landscape with its best learning rate at 3e-4; loss falls with each evaluation."""
    distance = abs(math.log10(parameters["training.learningRate"]) - math.log10(3e-4))
    return round(0.2 + distance + 1.0 / evaluation, 6)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(trials: int, algorithm: str) -> dict[str, Any]:
    spec = {
        "template": TEMPLATE,
        "parameters": [
            {"name": "training.learningRate", "type": "float", "min": 1e-6, "max": 1e-1, "log": True}
        ],
        "algorithm": {"name": algorithm, "seed": 1},
        "earlyStopping": {"name": "median", "startupTrials": 3},
        "maxTrials": trials,
        "parallelTrials": 2,
    }
    body = {
        "metadata": {"name": "bench", "namespace": "b", "uid": "uid-bench", "generation": 1},
        "spec": spec,
    }
    jobs: dict[str, dict[str, Any]] = {}
    progress: dict[str, int] = {}
    passes = cpu = 0.0
    gaps: list[int] = []
    ended_at: dict[str, int] = {}
    created_at: dict[str, int] = {}
    started = time.perf_counter()
    status: dict[str, Any] = {}
    for number in range(trials * (EVALUATIONS + 3)):
        before = _cpu()
        plan = plan_pass({**body, "status": status}, list(jobs.values()), NOW)
        cpu += _cpu() - before
        passes += 1
        status = plan.status
        for ref in plan.delete:
            jobs.pop(ref.name, None)
        for manifest in plan.create:
            name = manifest["metadata"]["name"]
            created_at[name] = number
            job = copy.deepcopy(manifest)
            job["metadata"]["uid"] = f"uid-{name}"
            jobs[name] = job
            progress[name] = 0
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        records = {r["name"]: r for r in status["history"]}
        for name, job in list(jobs.items()):
            if records[name]["state"] not in ("Pending", "Running"):
                continue
            progress[name] += 1
            evaluation = progress[name]
            value = _loss(records[name]["parameters"], evaluation)
            job["status"] = {"progress": {"step": 10 * evaluation, "totalSteps": 50, "evalLoss": value}}
            if evaluation >= EVALUATIONS:
                job["status"]["conditions"] = [{"type": "Succeeded", "status": "True"}]
                ended_at[name] = number
    order = sorted(created_at, key=lambda n: int(n.rsplit("-t", 1)[1]))
    for previous, following in itertools.pairwise(order):
        if previous in ended_at:
            gaps.append(max(0, created_at[following] - ended_at[previous] - 1))
    counts = status.get("trials") or {}
    return {
        "algorithm": algorithm,
        "trials": counts.get("total"),
        "pruned": counts.get("pruned"),
        "passes": int(passes),
        "operator_cpu_seconds_per_trial": round(cpu / max(1, counts.get("total") or 1), 4),
        "operator_cpu_seconds_per_pass": round(cpu / max(1, passes), 5),
        "passes_between_trial_end_and_next_start_max": max(gaps) if gaps else None,
        "best_value": (status.get("bestTrial") or {}).get("value"),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "status_bytes": len(json.dumps(status)),
    }


def summary_table(result: dict[str, Any]) -> str:
    rows = [f"| {key} | {value} |" for key, value in result.items()]
    return "\n".join(["| measure | value |", "|---|---|", *rows])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--algorithm", default="tpe")
    args = parser.parse_args(argv)
    return run(args.trials, args.algorithm)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
