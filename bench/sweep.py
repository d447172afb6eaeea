"""`make bench` part: what a FineTuneSweep costs the operator, on its pure pass and on the cluster.

What it measures (JSON on stdout, no timed assertions):

- `decisions`: a TPE sweep with the median pruner is driven through `plan_pass` exactly as the
  controller drives it, with trials whose evaluation curves follow a made-up landscape; per trial
  it records the operator CPU spent deciding (suggestions, study rebuilds, pruning), and how many
  passes separate a trial's end from the next trial's creation (0: the same pass that sees a trial
  finish records and creates its successor, so the gap is one watch event plus one pass).
- `cluster`: a sequential sweep (parallelTrials 1) of tiny real trainings on the local cluster's
  process node, under the operator with its default settings: the seconds from a trial's
  FineTuneJob turning Succeeded to the next trial's FineTuneJob appearing (both seen on one watch,
  in this process's clock; floor 0), and the operator's CPU seconds per trial (its whole process:
  the job controller running the trial, the scrapes, the sweep's decisions), next to the per-job
  figure of operator_scale (bench/results/operator_scale.json) for comparison.

- `quality`: a 12-trial TPE FineTuneSweep on the quality benchmark's WordNet data against one job
  with the API's default hyperparameters, test macro-F1 of both (bench/sweep_quality.py).

Usage: python bench/sweep.py [--trials 40] [--algorithm tpe] [--cluster-trials 3] [--no-cluster]
       [--quality-trials 12]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import copy
import itertools
import json
import math
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bench import report
from bench.operator_namespace import OperatorNamespace, operator_namespace
from bench.watching import MilestoneRecorder
from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_api.sweep import LABEL_SWEEP, SWEEP_PLURAL
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


CLUSTER_SWEEP = "bench-sweep"
CLUSTER_WAIT = 1800.0


def cluster_template(model: str, train: str, validation: str, prefix: str) -> dict[str, Any]:
    """One tiny real training per trial on the process node (the trainer tests' BERT and data)."""
    return {
        "model": {"uri": model, "task": "sequence-classification", "numLabels": 2},
        "dataset": {"train": train, "validation": validation, "maxLength": 16},
        "training": {
            "maxSteps": 16,
            "batchSizePerDevice": 8,
            "loggingSteps": 4,
            "evaluation": {"strategy": "steps", "everySteps": 8, "metric": "loss"},
        },
        "resources": {
            "workers": 1,
            "gpusPerWorker": 0,
            "nodeSelector": {"finetune.dev/process-node": "true"},
            "tolerations": [
                {"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
        "checkpoint": {"everySteps": 8, "keep": 1},
        "output": {"uri": f"{prefix}/out"},
        "storage": {"secretRef": {"name": "s3-credentials"}},
        "runPolicy": {"terminationGracePeriodSeconds": 5},
    }


def trial_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A trial FineTuneJob is `created` when first seen and `ended` once Succeeded or Failed is True."""
    name = (obj.get("metadata") or {}).get("name")
    seen = [(name, "created")]
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            seen.append((name, "ended"))
    return seen


def per_job_cpu_floor() -> float | None:
    """The operator's CPU seconds per FineTuneJob of the last operator_scale run (smallest size)."""
    path = Path(__file__).resolve().parent / "results" / "operator_scale.json"
    with contextlib.suppress(FileNotFoundError, KeyError, IndexError, ValueError):
        sizes = json.loads(path.read_text())["sizes"]
        return float(sizes[0]["operator"]["operator"]["cpuSecondsPerJob"])
    return None


def run_on_cluster(trials: int) -> dict[str, Any]:
    """A sequential grid sweep of `trials` real trainings under the operator; see the module docstring."""
    from finetune_testkit.trainer_helpers import sentiment_records, write_jsonl, write_tiny_bert

    rates = [round(5e-3 / 2**k, 8) for k in range(trials)]
    with operator_namespace("sweep", wait=CLUSTER_WAIT) as bench, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = write_tiny_bert(work / "model")
        train = write_jsonl(work / "train.jsonl", sentiment_records(96, seed=3))
        validation = write_jsonl(work / "validation.jsonl", sentiment_records(32, seed=4))
        template = cluster_template(
            f"file://{model}", f"file://{train}", f"file://{validation}", bench.prefix
        )
        parameters = [{"name": "training.learningRate", "type": "categorical", "values": rates}]
        spec = {
            "template": template,
            "parameters": parameters,
            "algorithm": {"name": "grid"},
            "parallelTrials": 1,
        }
        with watch_trials(bench, CLUSTER_SWEEP) as recorder:
            cpu_before = bench.operator.cpu_seconds()
            started = time.monotonic()
            report.progress(f"sweep: {trials} real trials, one at a time, in {bench.namespace}")
            status = run_sweep(bench, CLUSTER_SWEEP, spec)
            wall = time.monotonic() - started
            cpu = bench.operator.cpu_seconds() - cpu_before
            created, ended = recorder.times("created"), recorder.times("ended")
        names = [f"{CLUSTER_SWEEP}-t{index}" for index in range(trials)]
        gaps = [
            round(created[following] - ended[previous], 3)
            for previous, following in itertools.pairwise(names)
            if previous in ended and following in created
        ]
        return {
            "trials": trials,
            "phase": status.get("phase"),
            "trialCounts": status.get("trials"),
            "trialEndToNextStartSeconds": gaps,
            "trialEndToNextStartSecondsMax": max(gaps) if gaps else None,
            "operatorCpuSecondsPerTrial": round(cpu / trials, 3),
            "operatorCpuSecondsPerJobOfOperatorScale": per_job_cpu_floor(),
            "sweepWallSeconds": round(wall, 1),
        }


@contextlib.contextmanager
def watch_trials(bench: OperatorNamespace, sweep: str) -> Iterator[MilestoneRecorder]:
    """When each trial FineTuneJob of `sweep` appears and ends, on this process's clock."""
    recorder = MilestoneRecorder(
        bench.cluster.custom.list_namespaced_custom_object, trial_milestones,
        group=GROUP, version=VERSION, namespace=bench.namespace, plural=PLURAL,
        label_selector=f"{LABEL_SWEEP}={sweep}",
    )  # fmt: skip
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()


def run_sweep(bench: OperatorNamespace, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create the FineTuneSweep and wait until it is Succeeded or Failed; returns its status."""
    custom = bench.cluster.custom
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneSweep",
        "metadata": {"name": name},
        "spec": spec,
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, bench.namespace, SWEEP_PLURAL, body)

    return bench.wait_finished(SWEEP_PLURAL, name, CLUSTER_WAIT)


def summary_table(result: dict[str, Any]) -> str:
    rows = [f"| decisions: {key} | {value} |" for key, value in result["decisions"].items()]
    rows += [f"| cluster: {key} | {value} |" for key, value in (result.get("cluster") or {}).items()]
    quality = result.get("quality")
    if quality:
        best, defaults = quality["bestTrial"], quality["defaultHyperparameters"]
        rows += [
            f"| quality: test macro-F1, default hyperparameters | {defaults['testF1Macro']} |",
            f"| quality: test macro-F1, best of {quality['trials']} | {best['testF1Macro']} |",
            f"| quality: best trial's parameters | {best['parameters']} |",
        ]
    return "\n".join(["| measure | value |", "|---|---|", *rows])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="decisions: trials of the pure-pass sweep")
    parser.add_argument("--algorithm", default="tpe", help="decisions: the sweep's algorithm")
    parser.add_argument("--cluster-trials", type=int, default=3, help="cluster: real trials, one at a time")
    parser.add_argument("--no-cluster", action="store_true", help="skip the real-cluster parts")
    parser.add_argument(
        "--quality-trials", type=int, default=12, help="quality: TPE trials on the WordNet data (0: skip)"
    )
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"benchmark": "sweep", "decisions": run(args.trials, args.algorithm)}
    if not args.no_cluster:
        result["cluster"] = run_on_cluster(args.cluster_trials)
        if args.quality_trials:
            from bench import sweep_quality

            result["quality"] = sweep_quality.run(args.quality_trials)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
