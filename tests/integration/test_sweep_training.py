"""FineTuneSweeps on the real local cluster with real training: every trial is a FineTuneJob whose
single worker trains a tiny BERT for real on the process node, checkpointing to the local S3.

- a grid of 4 trials completes with the right best trial, although the operator is SIGKILLed while
  trials run (no trial is created twice);
- parallelTrials 2 is never exceeded (watched through the whole sweep), for grid and TPE;
- a hopeless learning rate is pruned by the median rule before its last evaluation, and by
  hyperband at its first rung;
- maxFailedTrials ends the sweep Failed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from finetune_api import GROUP, PLURAL, VERSION
from finetune_api.sweep import SWEEP_PLURAL, parse_sweep_spec
from finetune_operator.sweep.study import suggest
from finetune_testkit.trainer_helpers import sentiment_records, write_jsonl, write_tiny_bert
from localcluster.operator_process import OperatorProcess
from localcluster.quickstart import ensure_credentials
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster

SWEEP_TIMEOUT = 900.0  # a handful of tiny trainings on 2 shared CPUs
GOOD, HOPELESS = 5e-3, 0.5


@pytest.fixture
def sweep_operator(cluster: Any, crds_installed: list[str], namespace: str) -> Iterator[OperatorProcess]:
    log = cluster.config.log_dir / f"operator-{namespace}.log"
    # Standalone: a SIGKILLed operator leaves no peering lease for its successor to wait out.
    process = OperatorProcess(
        cluster.env(), namespace, log, extra_args=("--standalone", "--progress-interval-seconds", "1")
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sweep-data")
    model = write_tiny_bert(root / "model")
    train = write_jsonl(root / "train.jsonl", sentiment_records(96, seed=3))
    validation = write_jsonl(root / "validation.jsonl", sentiment_records(32, seed=4))
    return {"model": f"file://{model}", "train": f"file://{train}", "validation": f"file://{validation}"}


def template(data: dict[str, str], prefix: str, max_steps: int = 24, every: int = 8) -> dict[str, Any]:
    return {
        "model": {
            "uri": data["model"],
            "task": "sequence-classification",
            "numLabels": 2,
            "labels": ["neg", "pos"],
        },
        "dataset": {"train": data["train"], "validation": data["validation"], "maxLength": 16},
        "training": {
            "maxSteps": max_steps,
            "batchSizePerDevice": 8,
            "learningRate": GOOD,
            "loggingSteps": 2,
            "evaluation": {"strategy": "steps", "everySteps": every, "metric": "loss"},
        },
        "resources": {
            "workers": 1,
            "gpusPerWorker": 0,
            "nodeSelector": {"finetune.dev/process-node": "true"},
            "tolerations": [
                {
                    "key": "finetune.dev/process-node",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ],
        },
        "checkpoint": {"everySteps": 8, "keep": 1},
        "output": {"uri": f"{prefix}/out"},
        "storage": {"secretRef": {"name": "s3-credentials"}},
        "runPolicy": {"maxRestarts": 1, "backoffSeconds": 1, "terminationGracePeriodSeconds": 5},
    }


class Sweeps:
    def __init__(self, api_client: client.ApiClient, namespace: str):
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FineTuneSweep",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, SWEEP_PLURAL, body)

    def status(self, name: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, SWEEP_PLURAL, name)
        return body.get("status") or {}

    def trials(self, name: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, label_selector=f"finetune.dev/sweep={name}"
        )["items"]

    def wait(self, name: str, what: str, check, timeout: float = SWEEP_TIMEOUT) -> dict[str, Any]:
        def probe():
            status = self.status(name)
            return status if check(status) else None

        return wait_until(probe, timeout, f"FineTuneSweep {name}: {what}")

    def wait_phase(self, name: str, phase: str) -> dict[str, Any]:
        def ended(status: dict[str, Any]) -> bool:
            if status.get("phase") in ("Succeeded", "Failed") and status.get("phase") != phase:
                raise AssertionError(f"sweep {name} ended {status.get('phase')}: {status.get('conditions')}")
            return status.get("phase") == phase

        return self.wait(name, f"phase {phase}", ended)


class ConcurrencyWatch:
    """Counts, through the whole sweep, how many trials of it are active at once (not finished)."""

    def __init__(self, sweeps: Sweeps, name: str):
        self.sweeps, self.name, self.most = sweeps, name, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            active = 0
            for trial in self.sweeps.trials(self.name):
                phase = (trial.get("status") or {}).get("phase")
                if phase not in ("Succeeded", "Failed") and not trial["metadata"].get("deletionTimestamp"):
                    active += 1
            self.most = max(self.most, active)
            self._stop.wait(0.3)

    def __enter__(self) -> ConcurrencyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def sweeps(api_client, namespace, core_v1, cluster) -> Sweeps:
    ensure_credentials(core_v1, namespace, cluster.s3_endpoint)
    return Sweeps(api_client, namespace)


def test_a_grid_sweep_finds_the_best_trial_and_survives_an_operator_crash(
    sweep_operator, sweeps, tiny_data, s3_bucket
) -> None:
    prefix = f"s3://{s3_bucket}/sweep-tests/{uuid.uuid4().hex[:8]}"
    spec = {
        "template": template(tiny_data, prefix),
        "parameters": [
            {"name": "training.learningRate", "type": "categorical", "values": [1e-6, 5e-3]},
            {"name": "training.batchSizePerDevice", "type": "categorical", "values": [4, 8]},
        ],
        "algorithm": {"name": "grid", "seed": 1},
        "parallelTrials": 2,
    }
    with ConcurrencyWatch(sweeps, "grid") as watch:
        sweeps.create("grid", spec)
        sweeps.wait("grid", "a trial running", lambda s: (s.get("trials") or {}).get("running", 0) >= 1)
        sweep_operator.kill()  # mid-sweep, wherever it was
        sweep_operator.start()
        status = sweeps.wait_phase("grid", "Succeeded")
    assert watch.most <= 2
    names = sorted(t["metadata"]["name"] for t in sweeps.trials("grid"))
    assert names == ["grid-t0", "grid-t1", "grid-t2", "grid-t3"]
    assert status["trials"] == {"total": 4, "running": 0, "succeeded": 4, "pruned": 0, "failed": 0}
    history = status["history"]
    points = {
        (r["parameters"]["training.learningRate"], r["parameters"]["training.batchSizePerDevice"])
        for r in history
    }
    assert len(points) == 4
    best = min(history, key=lambda r: r["value"])
    assert status["bestTrial"]["name"] == best["name"]
    assert best["parameters"]["training.learningRate"] == 5e-3  # a rate of 1e-6 learns nothing in 24 steps
    assert status["bestTrial"]["output"] == f"{prefix}/out/{best['name']}"
    metrics = sweep_operator.metrics()
    assert (
        'finetune_operator_sweep_trials{namespace="' in metrics
        and "finetune_operator_sweep_best_value" in metrics
    )


def test_a_tpe_sweep_never_runs_more_than_parallel_trials_at_once(
    sweep_operator, sweeps, tiny_data, s3_bucket
) -> None:
    prefix = f"s3://{s3_bucket}/sweep-tests/{uuid.uuid4().hex[:8]}"
    spec = {
        "template": template(tiny_data, prefix, max_steps=16),
        "parameters": [
            {"name": "training.learningRate", "type": "float", "min": 1e-4, "max": 1e-2, "log": True},
            {"name": "training.weightDecay", "type": "float", "min": 0.0, "max": 0.1},
        ],
        "algorithm": {"name": "tpe", "seed": 5},
        "maxTrials": 3,
        "parallelTrials": 2,
    }
    with ConcurrencyWatch(sweeps, "tpe") as watch:
        sweeps.create("tpe", spec)
        status = sweeps.wait_phase("tpe", "Succeeded")
    assert watch.most == 2  # two at once, never three
    assert status["trials"] == {"total": 3, "running": 0, "succeeded": 3, "pruned": 0, "failed": 0}
    rates = {r["parameters"]["training.learningRate"] for r in status["history"]}
    assert len(rates) == 3 and all(1e-4 <= rate <= 1e-2 for rate in rates)
    assert status["bestTrial"]["value"] == min(r["value"] for r in status["history"])


def _seed_with_hopeless_last(spec: dict[str, Any]) -> int:
    """A grid seed whose order puts the hopeless rate last (the order is the sampler's, replayed)."""
    count = len(spec["parameters"][0]["values"])
    for seed in range(50):
        parsed = parse_sweep_spec({**spec, "algorithm": {"name": "grid", "seed": seed}})
        history: list[dict[str, Any]] = []
        for index in range(count):
            values, sampler_state = suggest(parsed, history, "replay", index)
            history.append(
                {
                    "index": index,
                    "name": f"t{index}",
                    "state": "Running",
                    "parameters": values,
                    "samplerState": sampler_state,
                }
            )
        if history[-1]["parameters"]["training.learningRate"] == HOPELESS:
            return seed
    raise AssertionError("no seed puts the hopeless rate last")


MEDIAN_STEPS = 160


def test_a_hopeless_trial_is_pruned_by_the_median_rule_before_its_last_evaluation(
    sweep_operator, sweeps, tiny_data, s3_bucket
) -> None:
    prefix = f"s3://{s3_bucket}/sweep-tests/{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {
        # Long enough (40 evaluations) that the operator's scrape and the pruner see the hopeless
        # trial's curve well before it could finish, even on a loaded machine; the steps are cheap.
        "template": template(tiny_data, prefix, max_steps=MEDIAN_STEPS, every=4),
        "parameters": [
            {"name": "training.learningRate", "type": "categorical", "values": [GOOD, 3e-3, HOPELESS]}
        ],
        "earlyStopping": {"name": "median", "startupTrials": 2},
        "parallelTrials": 1,
    }
    spec["algorithm"] = {"name": "grid", "seed": _seed_with_hopeless_last(spec)}
    sweeps.create("prune", spec)
    status = sweeps.wait_phase("prune", "Succeeded")
    hopeless = next(r for r in status["history"] if r["parameters"]["training.learningRate"] == HOPELESS)
    assert hopeless["state"] == "Pruned", hopeless
    assert hopeless["step"] < MEDIAN_STEPS and hopeless["evaluations"][-1]["evaluation"] < MEDIAN_STEPS // 4
    assert "pruned by median" in hopeless["message"]
    assert status["trials"]["pruned"] == 1 and status["trials"]["succeeded"] == 2
    wait_until(
        lambda: hopeless["name"] not in {t["metadata"]["name"] for t in sweeps.trials("prune")},
        120,
        "the pruned trial's FineTuneJob deleted",
    )


def test_a_hopeless_trial_is_pruned_by_hyperband_at_its_first_rung(
    sweep_operator, sweeps, tiny_data, s3_bucket
) -> None:
    """One bracket (maxResource 2 < reductionFactor 3): successive halving from evaluation 1, where
    a trial goes on only if it is the best of fewer than three that reached the rung."""
    prefix = f"s3://{s3_bucket}/sweep-tests/{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {
        "template": template(tiny_data, prefix, max_steps=24, every=4),
        "parameters": [{"name": "training.learningRate", "type": "categorical", "values": [GOOD, HOPELESS]}],
        "earlyStopping": {"name": "hyperband", "minResource": 1, "maxResource": 2, "reductionFactor": 3},
        "parallelTrials": 1,
    }
    spec["algorithm"] = {"name": "grid", "seed": _seed_with_hopeless_last(spec)}
    sweeps.create("hyperband", spec)
    status = sweeps.wait_phase("hyperband", "Succeeded")
    good, hopeless = (
        next(r for r in status["history"] if r["parameters"]["training.learningRate"] == rate)
        for rate in (GOOD, HOPELESS)
    )
    assert good["state"] == "Succeeded", good
    assert hopeless["state"] == "Pruned", hopeless
    assert hopeless["step"] < 24 and "pruned by hyperband" in hopeless["message"]
    assert "completed_rung_0" in good["samplerState"]  # the rung it was compared with, from status


def test_max_failed_trials_ends_the_sweep_failed(sweep_operator, sweeps, tiny_data, s3_bucket) -> None:
    prefix = f"s3://{s3_bucket}/sweep-tests/{uuid.uuid4().hex[:8]}"
    broken = {**tiny_data, "train": f"{tiny_data['train']}.missing"}
    spec = {
        "template": template(broken, prefix),
        "parameters": [
            {"name": "training.learningRate", "type": "float", "min": 1e-4, "max": 1e-2, "log": True}
        ],
        "algorithm": {"name": "random"},
        "maxTrials": 5,
        "parallelTrials": 1,
        "maxFailedTrials": 2,
    }
    sweeps.create("broken", spec)
    status = sweeps.wait_phase("broken", "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "TooManyFailedTrials"
    assert status["trials"]["failed"] == 2 and status["trials"]["total"] == 2
    assert all("train.jsonl.missing" in (r.get("message") or "") for r in status["history"])
