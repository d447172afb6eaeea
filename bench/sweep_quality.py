"""Does a sweep pay? A 12-trial TPE FineTuneSweep against the default hyperparameters, on real text.

Why this comparison (issue 15): a user's alternative to a sweep is one job with the API's default
hyperparameters. Both run here on the quality benchmark's data (bench/quality.py: WordNet noun
glosses labelled by lexicographer file, the shipped MiniLM, the same seeded splits), on the local
cluster's process node under the operator:

- ``defaults``: one FineTuneJob whose training section sets only the evaluation (per epoch,
  ``f1_macro``): learning rate, batch, epochs, warm-up and weight decay are the API's defaults;
- ``sweep``: a FineTuneSweep with that job as its template, TPE over learning rate, batch size,
  epochs, warm-up ratio and weight decay, the median pruner, 12 trials, 2 at a time; the objective
  is validation macro-F1 (what a user can see), and the best trial is chosen on it alone.

Reported: test macro-F1 (the held-out split neither side chose on) of the default job and of the
sweep's best trial (each from its output's metrics.json), the best trial's parameters, the trial
counts (succeeded / pruned / failed) and the wall time of both.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import quality, report
from bench.operator_namespace import PROCESS_NODE_PLACEMENT, SECRET, OperatorNamespace, operator_namespace
from finetune_api.constants import GROUP, PLURAL, VERSION

SWEEP = "quality-tpe"
DEFAULTS_JOB = "quality-defaults"
WAIT = 5400.0
SEARCH_SPACE: list[dict[str, Any]] = [
    {"name": "training.learningRate", "type": "float", "min": 1e-5, "max": 3e-4, "log": True},
    {"name": "training.batchSizePerDevice", "type": "categorical", "values": [8, 16, 32]},
    {"name": "training.epochs", "type": "int", "min": 1, "max": 4},
    {"name": "training.warmupRatio", "type": "float", "min": 0.0, "max": 0.2},
    {"name": "training.weightDecay", "type": "float", "min": 0.0, "max": 0.1},
]


def template(model_uri: str, data: dict[str, str], output: str, labels: list[str]) -> dict[str, Any]:
    """The default-hyperparameter job: nothing in `training` but the per-epoch evaluation."""
    return {
        "model": {
            "uri": model_uri,
            "task": "sequence-classification",
            "numLabels": len(labels),
            "labels": labels,
        },
        "dataset": {**data, "maxLength": quality.HYPER["maxLength"]},
        "training": {"loggingSteps": 20, "evaluation": {"strategy": "epoch", "metric": "f1_macro"}},
        "resources": {"workers": 1, "gpusPerWorker": 0, "cpu": "1", **PROCESS_NODE_PLACEMENT},
        "checkpoint": {"everySteps": 100000, "keep": 1},
        "output": {"uri": output},
        "storage": {"secretRef": {"name": SECRET}},
        "runPolicy": {"terminationGracePeriodSeconds": 5},
    }


def sweep_spec(base: dict[str, Any], trials: int) -> dict[str, Any]:
    return {
        "template": base,
        "parameters": SEARCH_SPACE,
        "objective": {"metric": "f1_macro", "direction": "maximize"},
        "algorithm": {"name": "tpe", "seed": 0},
        "earlyStopping": {"name": "median", "startupTrials": 3, "warmupEvaluations": 1},
        "maxTrials": trials,
        "parallelTrials": 2,
        "maxFailedTrials": 2,
    }


def test_f1(bench: OperatorNamespace, output_uri: str) -> float:
    """test_f1_macro from a finished job's output (s3://<bucket>/bench/<ns>/...)/metrics.json."""
    key = output_uri.rstrip("/").removeprefix(f"{bench.prefix}/")
    return round(float(json.loads(bench.read_text(f"{key}/metrics.json"))["test_f1_macro"]), 4)


def run(trials: int = 12, per_class: int = 150) -> dict[str, Any]:
    """The default job and the sweep on the same cluster, started together; see the module docstring."""
    from bench.sweep import run_sweep
    from localcluster.seed import minilm_dir

    if not quality.WORDNET_NOUNS.exists():
        raise SystemExit(f"{quality.WORDNET_NOUNS} is missing: run `make bench-data` (Debian wordnet-base)")
    records = quality.parse_noun_glosses(quality.WORDNET_NOUNS.read_text(encoding="utf-8"))
    data = quality.splits(records, per_class, quality.HYPER["seed"])
    labels = sorted(quality.LEXNAMES.values())
    with operator_namespace("sweep-quality", wait=WAIT) as bench, tempfile.TemporaryDirectory() as tmp:
        uris = {
            split: bench.put(str(quality.write_jsonl(Path(tmp) / f"{split}.jsonl", rows)), f"{split}.jsonl")
            for split, rows in data.items()
        }
        model_uri = bench.put(str(minilm_dir()), "model", recursive=True)
        defaults = template(model_uri, uris, f"{bench.prefix}/defaults-out", labels)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FineTuneJob", "metadata": {"name": DEFAULTS_JOB}}
        custom = bench.cluster.custom
        custom.create_namespaced_custom_object(
            GROUP, VERSION, bench.namespace, PLURAL, {**body, "spec": defaults}
        )
        started = time.monotonic()
        report.progress(f"sweep quality: default job and a {trials}-trial TPE sweep in {bench.namespace}")
        base = template(model_uri, uris, f"{bench.prefix}/sweep-out", labels)
        status = run_sweep(bench, SWEEP, sweep_spec(base, trials))
        sweep_seconds = time.monotonic() - started
        default_status = bench.wait_finished(PLURAL, DEFAULTS_JOB, WAIT)
        best = status.get("bestTrial") or {}
        if status.get("phase") != "Succeeded" or not best.get("output"):
            raise RuntimeError(f"the quality sweep ended {status.get('phase')}: {status.get('conditions')}")
        if default_status.get("phase") != "Succeeded":
            raise RuntimeError(f"the default-hyperparameter job ended {default_status.get('phase')}")
        best_test = test_f1(bench, best["output"])
        default_test = test_f1(bench, defaults["output"]["uri"])
        return {
            "data": {split: len(rows) for split, rows in data.items()},
            "searchSpace": SEARCH_SPACE,
            "trials": status.get("trials"),
            "bestTrial": {
                "name": best.get("name"),
                "validationF1Macro": best.get("value"),
                "parameters": best.get("parameters"),
                "testF1Macro": best_test,
            },
            "defaultHyperparameters": {"testF1Macro": default_test},
            "testF1MacroGain": round(best_test - default_test, 4),
            "sweepWallSeconds": round(sweep_seconds, 1),
        }
