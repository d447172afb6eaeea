"""CMA-ES keeps its search state across passes and operator restarts with nothing but status.

The sweep rebuilds its Optuna study from `status.history` on every pass. Optuna's own CmaEsSampler
would find no pickled optimizer there and restart at its first update each time (stuck at
generation 1); `ReplayedCmaEsSampler` replays the recorded generations instead (study.py).
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
import optuna
from optuna.samplers import CmaEsSampler

from finetune_api.sweep import FineTuneSweepSpec, parse_sweep_spec
from finetune_operator.sweep.space import distributions, typed_values
from finetune_operator.sweep.study import ReplayedCmaEsSampler, make_sampler, rebuild, suggest
from tests.unit.test_sweep_plan import TEMPLATE

GENERATION = "cma:generation"
POPULATION = 6  # CMA-ES's default population for 2 dimensions: 4 + floor(3 ln 2)
OPTIMUM = {"training.learningRate": 1e-2, "training.weightDecay": 0.8}


def cmaes_spec(seed: int = 3) -> FineTuneSweepSpec:
    return parse_sweep_spec(
        {
            "template": TEMPLATE,
            "parameters": [
                {"name": "training.learningRate", "type": "float", "min": 1e-5, "max": 1e-1, "log": True},
                {"name": "training.weightDecay", "type": "float", "min": 0.0, "max": 1.0},
            ],
            "objective": {"metric": "loss", "direction": "minimize"},
            "algorithm": {"name": "cmaes", "seed": seed},
            "maxTrials": 100,
            "parallelTrials": 1,
        }
    )


def loss(values: dict[str, Any]) -> float:
    """A bowl around OPTIMUM in the sampler's own coordinates (log learning rate)."""
    rate = math.log10(values["training.learningRate"]) - math.log10(OPTIMUM["training.learningRate"])
    return rate**2 + (values["training.weightDecay"] - OPTIMUM["training.weightDecay"]) ** 2


def run_sweep(spec: FineTuneSweepSpec, trials: int) -> list[dict[str, Any]]:
    """A sequential sweep: each suggestion comes from status alone (a JSON round trip, no memory)."""
    history: list[dict[str, Any]] = []
    for index in range(trials):
        stored = json.loads(json.dumps(history))
        values, sampler_state = suggest(spec, stored, "sweep-uid", index)
        history.append(
            {
                "index": index,
                "name": f"s-t{index}",
                "state": "Succeeded",
                "parameters": values,
                "samplerState": sampler_state,
                "value": loss(values),
            }
        )
    return history


def test_generations_advance_one_population_at_a_time_from_status_alone() -> None:
    history = run_sweep(cmaes_spec(), 1 + 3 * POPULATION + 2)
    generations = [record["samplerState"].get(GENERATION) for record in history]
    assert generations == [None] + [0] * POPULATION + [1] * POPULATION + [2] * POPULATION + [3, 3]
    assert all("optimizer" not in key for record in history for key in record["samplerState"])


def test_the_search_moves_towards_the_optimum() -> None:
    history = run_sweep(cmaes_spec(), 1 + 4 * POPULATION)
    by_generation: dict[int, list[float]] = {}
    for record in history[1:]:
        by_generation.setdefault(record["samplerState"][GENERATION], []).append(record["value"])
    assert statistics.median(by_generation[3]) < statistics.median(by_generation[0]) / 4


def test_a_rebuild_without_replay_is_stuck_where_the_replay_moves_on() -> None:
    """What the sweep did before: Optuna's sampler on a study rebuilt from status, every pass."""
    spec = cmaes_spec()
    history = run_sweep(spec, 1 + 2 * POPULATION)
    index = len(history)
    study, _ = rebuild(spec, history, "sweep-uid", CmaEsSampler(seed=spec.algorithm.seed + index))
    stock = study.ask(distributions(spec.parameters))
    ours, sampler_state = suggest(spec, history, "sweep-uid", index)
    stock_generation = study._storage.get_trial(stock._trial_id).system_attrs[GENERATION]
    assert stock_generation == 1 and sampler_state[GENERATION] == 2
    assert ours != typed_values(spec.parameters, stock.params)


def test_the_replayed_optimizer_is_the_one_optuna_would_have_unpickled() -> None:
    """Optuna's sampler run in one long-lived study pickles its optimizer after each generation; the
    replay over the same trials (as status records) must rebuild exactly that optimizer."""
    spec = cmaes_spec(seed=11)
    space = distributions(spec.parameters)
    native = optuna.create_study(direction="minimize", sampler=CmaEsSampler(seed=11))
    for _ in range(1 + 3 * POPULATION + 2):  # generations 0-2 complete, generation 3 begun
        trial = native.ask(space)
        native.tell(trial, loss(typed_values(spec.parameters, trial.params)))
    native_sampler = native.sampler
    assert isinstance(native_sampler, CmaEsSampler)
    pickled = native_sampler._restore_optimizer(native_sampler._get_trials(native))
    assert pickled is not None and pickled.generation == 3

    records = [
        {
            "index": t.number,
            "name": f"s-t{t.number}",
            "state": "Succeeded",
            "parameters": typed_values(spec.parameters, t.params),
            "samplerState": {k: v for k, v in t.system_attrs.items() if k == GENERATION},
            "value": t.value,
        }
        for t in native.trials
    ]
    sampler = make_sampler(spec, len(records))
    assert isinstance(sampler, ReplayedCmaEsSampler)
    study, _ = rebuild(spec, json.loads(json.dumps(records)), "sweep-uid", sampler)
    sampler._replay_for = (space, study.direction)
    replayed = sampler._restore_optimizer(sampler._get_trials(study))

    assert replayed.generation == pickled.generation
    np.testing.assert_allclose(replayed.mean, pickled.mean)
    np.testing.assert_allclose(replayed._sigma, pickled._sigma)
    np.testing.assert_allclose(replayed._C, pickled._C)
