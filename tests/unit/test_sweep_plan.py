"""FineTuneSweep passes as pure functions: trials recorded before creation, the study rebuilt from
status, grids covered exactly once, pruning decided on recorded curves, the sweep's end.

The FineTuneJobs here are plain dicts as the API server stores them (the input of a pure function),
with the status the FineTuneJob controller writes.
"""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from finetune_api.sweep import parse_sweep_spec
from finetune_operator.sweep.plan import plan_pass
from finetune_operator.sweep.study import should_prune, suggest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UID = "uid-lr"
TEMPLATE = {
    "model": {"uri": "file:///models/tiny", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "file:///data/train.jsonl", "validation": "file:///data/val.jsonl"},
    "training": {"maxSteps": 30, "evaluation": {"strategy": "steps", "everySteps": 10, "metric": "loss"}},
    "output": {"uri": "s3://bucket/sweeps/lr"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}
GRID = [
    {"name": "training.learningRate", "type": "categorical", "values": [1e-3, 1e-2]},
    {"name": "training.batchSizePerDevice", "type": "int", "min": 8, "max": 16, "step": 8},
]


def sweep(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"template": TEMPLATE, "parameters": GRID, "algorithm": {"name": "grid"}, "parallelTrials": 2}
    body.update(spec)
    return {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneSweep",
        "metadata": {"name": "lr", "namespace": "ml", "uid": UID, "generation": 1},
        "spec": body,
        "status": status or {},
    }


def job_from(manifest: dict[str, Any], **status: Any) -> dict[str, Any]:
    job = copy.deepcopy(manifest)
    job["metadata"]["uid"] = "uid-" + job["metadata"]["name"]
    job["status"] = status
    return job


def succeeded(manifest: dict[str, Any], loss: float) -> dict[str, Any]:
    condition = {"type": "Succeeded", "status": "True", "reason": "Completed"}
    progress = {"step": 30, "totalSteps": 30, "evalLoss": loss}
    return job_from(manifest, conditions=[condition], progress=progress, phase="Succeeded")


def running(manifest: dict[str, Any], step: int, loss: float | None) -> dict[str, Any]:
    progress = {"step": step, "totalSteps": 30, **({"evalLoss": loss} if loss is not None else {})}
    return job_from(manifest, phase="Running", progress=progress)


def loss_of(parameters: dict[str, Any]) -> float:
    """A made-up landscape whose best point is lr 1e-2, batch 8."""
    return round(
        abs(math.log10(parameters["training.learningRate"]) + 2)
        + parameters["training.batchSizePerDevice"] / 100,
        6,
    )


def test_a_grid_sweep_records_before_creating_covers_the_grid_once_and_finds_the_best():
    body = sweep()
    jobs: dict[str, dict[str, Any]] = {}
    for _ in range(10):
        plan = plan_pass(body, list(jobs.values()), NOW)
        # Every job the pass creates is already in the status it writes first.
        recorded = {r["name"] for r in plan.status["history"]}
        assert {m["metadata"]["name"] for m in plan.create} <= recorded
        assert sum(1 for r in plan.status["history"] if r["state"] in ("Pending", "Running")) <= 2
        for manifest in plan.create:
            jobs[manifest["metadata"]["name"]] = manifest
        body = sweep(plan.status)
        # Trials finish: each job that exists reports its final loss.
        for name, job in list(jobs.items()):
            record = next(r for r in plan.status["history"] if r["name"] == name)
            jobs[name] = succeeded(job, loss_of(record["parameters"]))
        if plan.status["phase"] == "Succeeded":
            break
    status = plan.status
    assert status["phase"] == "Succeeded"
    points = {
        (r["parameters"]["training.learningRate"], r["parameters"]["training.batchSizePerDevice"])
        for r in status["history"]
    }
    assert points == {(1e-3, 8), (1e-3, 16), (1e-2, 8), (1e-2, 16)}
    assert [r["name"] for r in status["history"]] == ["lr-t0", "lr-t1", "lr-t2", "lr-t3"]
    assert status["trials"] == {"total": 4, "running": 0, "succeeded": 4, "pruned": 0, "failed": 0}
    best = status["bestTrial"]
    assert best["parameters"] == {"training.learningRate": 1e-2, "training.batchSizePerDevice": 8}
    assert best["output"] == f"s3://bucket/sweeps/lr/{best['name']}"
    assert best["value"] == pytest.approx(0.08)


def test_trials_are_owned_labelled_and_write_under_their_own_prefixes():
    plan = plan_pass(sweep(), [], NOW)
    manifest = plan.create[0]
    assert manifest["metadata"]["labels"] == {"finetune.dev/sweep": "lr", "finetune.dev/trial-index": "0"}
    owner = manifest["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("FineTuneSweep", UID, True)
    assert manifest["spec"]["output"]["uri"] == "s3://bucket/sweeps/lr/lr-t0"
    assert manifest["spec"]["checkpoint"]["uri"] == "s3://bucket/sweeps/lr/checkpoints/lr-t0"
    record = plan.status["history"][0]
    assert manifest["spec"]["training"]["learningRate"] == record["parameters"]["training.learningRate"]


def test_a_restart_between_status_write_and_creation_creates_the_recorded_trials_not_new_ones():
    first = plan_pass(sweep(), [], NOW)
    # The operator died after writing status: no job exists. The next pass must create the same
    # two trials with the same parameters, and suggest nothing new.
    again = plan_pass(sweep(first.status), [], NOW)
    assert [m["metadata"]["name"] for m in again.create] == ["lr-t0", "lr-t1"]
    assert [m["spec"] for m in again.create] == [m["spec"] for m in first.create]
    assert len(again.status["history"]) == 2


def test_a_substituted_spec_that_is_invalid_counts_as_a_failed_trial_with_the_message():
    parameters = [{"name": "training.warmupRatio", "type": "categorical", "values": [0.1]}]
    template = {**TEMPLATE, "training": {**TEMPLATE["training"], "warmupSteps": 5}}
    plan = plan_pass(sweep(template=template, parameters=parameters, maxFailedTrials=1), [], NOW)
    record = plan.status["history"][0]
    assert record["state"] == "Failed" and "warmup" in record["message"]
    assert plan.create == []
    assert plan.status["phase"] == "Failed"
    assert (
        next(c for c in plan.status["conditions"] if c["type"] == "Failed")["reason"] == "TooManyFailedTrials"
    )


def test_a_failed_trial_counts_a_restarting_one_does_not_and_max_failed_ends_the_sweep():
    body = sweep(maxFailedTrials=2, algorithm={"name": "random"}, parameters=GRID[:1], maxTrials=6)
    plan = plan_pass(body, [], NOW)
    jobs = [
        job_from(plan.create[0], phase="Restarting", conditions=[{"type": "Restarting", "status": "True"}]),
        job_from(
            plan.create[1],
            phase="Failed",
            conditions=[{"type": "Failed", "status": "True", "reason": "WorkerFailed", "message": "oom"}],
        ),
    ]
    plan = plan_pass(sweep(plan.status, **body["spec"]), jobs, NOW)
    states = {r["name"]: r["state"] for r in plan.status["history"]}
    assert states["lr-t0"] in ("Running",) and states["lr-t1"] == "Failed"
    assert "oom" in plan.status["history"][1]["message"]
    failed_again = job_from(
        plan.create[0],
        phase="Failed",
        conditions=[{"type": "Failed", "status": "True", "reason": "X", "message": "boom"}],
    )
    plan = plan_pass(sweep(plan.status, **body["spec"]), [jobs[0], jobs[1], failed_again], NOW)
    assert plan.status["phase"] == "Failed"
    assert plan.status["trials"]["failed"] >= 2
    assert [r.name for r in plan.delete] == ["lr-t0"]  # the still-running trial is stopped


def _record(index: int, state: str, curve: list[float], value: float | None = None) -> dict[str, Any]:
    return {
        "index": index,
        "name": f"lr-t{index}",
        "state": state,
        "parameters": {"training.learningRate": [1e-3, 1e-2][index % 2], "training.batchSizePerDevice": 8},
        "value": value if value is not None else (curve[-1] if state == "Succeeded" else None),
        "evaluations": [{"evaluation": i + 1, "step": 10 * (i + 1), "value": v} for i, v in enumerate(curve)],
        "samplerState": {},
    }


@pytest.mark.parametrize(
    "early_stopping",
    [
        {"name": "median", "startupTrials": 2},
        {"name": "hyperband", "minResource": 1, "maxResource": 2, "reductionFactor": 3},
        {"name": "successiveHalving", "minResource": 1, "reductionFactor": 2},
    ],
)
def test_pruners_stop_a_hopeless_curve_and_keep_a_good_one(early_stopping):
    spec = parse_sweep_spec(sweep(earlyStopping=early_stopping, algorithm={"name": "random"})["spec"])
    good = [_record(i, "Succeeded", [0.6 - 0.1 * i, 0.4 - 0.1 * i, 0.3 - 0.1 * i]) for i in range(2)]
    for record in good:  # what the pruner recorded while they ran (successive halving's rungs)
        record["samplerState"] = {"completed_rung_0": record["evaluations"][0]["value"]}
    history = [*good, _record(2, "Running", [0.45]), _record(3, "Running", [5.0])]
    # Every trial reaches its first evaluation in turn (the order the operator sees them in).
    decisions = {}
    for index in (2, 3):
        prune, history[index]["samplerState"] = should_prune(spec, history, UID, index)
        decisions[index] = prune
    assert decisions == {2: False, 3: True}, early_stopping


def test_median_waits_for_its_startup_trials():
    spec = parse_sweep_spec(sweep(earlyStopping={"name": "median", "startupTrials": 3})["spec"])
    history = [
        _record(0, "Succeeded", [0.5, 0.4]),
        _record(1, "Succeeded", [0.5, 0.3]),
        _record(2, "Running", [9.0]),
    ]
    assert should_prune(spec, history, UID, 2)[0] is False


def test_a_running_trial_reading_reaches_the_pruner_through_the_plan():
    body = sweep(
        earlyStopping={"name": "median", "startupTrials": 2},
        algorithm={"name": "random"},
        parameters=GRID[:1],
        maxTrials=4,
    )
    status = {
        "history": [
            _record(0, "Succeeded", [0.5, 0.4, 0.3]),
            _record(1, "Succeeded", [0.6, 0.5, 0.4]),
            {**_record(2, "Running", []), "evaluations": []},
        ]
    }
    template_job = plan_pass(sweep(), [], NOW).create[0]
    trial = copy.deepcopy(template_job)
    trial["metadata"].update(
        name="lr-t2", labels={"finetune.dev/sweep": "lr", "finetune.dev/trial-index": "2"}
    )
    plan = plan_pass(sweep(status, **body["spec"]), [running(trial, step=12, loss=3.0)], NOW)
    record = plan.status["history"][2]
    assert record["state"] == "Pruned" and record["step"] == 12 and record["value"] == 3.0
    assert "evaluation 1 (step 12)" in record["message"]
    assert [r.name for r in plan.delete] == ["lr-t2"]
    assert plan.status["trials"]["pruned"] == 1


def test_the_study_rebuilt_from_status_suggests_trial_n_deterministically_and_differently_from_trial_0():
    spec = parse_sweep_spec(
        sweep(
            algorithm={"name": "tpe", "seed": 7},
            maxTrials=8,
            parameters=[
                {"name": "training.learningRate", "type": "float", "min": 1e-5, "max": 1e-1, "log": True}
            ],
        )["spec"]
    )
    first, _ = suggest(spec, [], UID, 0)
    history = [{**_record(0, "Succeeded", [0.5]), "parameters": first}]
    second, _ = suggest(spec, history, UID, 1)
    assert second == suggest(spec, copy.deepcopy(history), UID, 1)[0]
    assert second != first
    assert 1e-5 <= second["training.learningRate"] <= 1e-1


def test_suspend_suspends_running_trials_and_starts_none():
    plan = plan_pass(sweep(), [], NOW)
    jobs = [running(m, step=1, loss=None) for m in plan.create]
    suspended = plan_pass(sweep(plan.status, suspend=True), jobs, NOW)
    assert suspended.status["phase"] == "Suspended"
    assert suspended.create == [] and suspended.suspend == {"lr-t0": True, "lr-t1": True}
