"""FineTuneSweep models: parameter spaces, the invalid-manifest table, grid completeness.

`INVALID_SWEEP_CASES` is also applied to the real API server (tests/integration/test_sweep_validation.py),
so `kubectl apply` and the models refuse the same manifests naming the same field.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from finetune_api.sweep import SweepSpecError, parse_sweep_spec
from finetune_api.sweep_paths import set_path, spec_leaves
from finetune_operator.sweep.space import distribution, grid_points, grid_space, substitute, typed_values
from finetune_operator.sweep.trial_job import TrialSpecError, trial_spec

VALID_SWEEP: dict[str, Any] = {
    "template": {
        "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
        "dataset": {"train": "s3://data/train.jsonl"},
        "training": {"evaluation": {"strategy": "steps", "everySteps": 10, "metric": "f1_macro"}},
        "output": {"uri": "s3://models/sweep"},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    },
    "parameters": [
        {"name": "training.learningRate", "type": "float", "min": 1e-5, "max": 1e-3, "log": True},
        {"name": "model.lora.r", "type": "int", "min": 4, "max": 16, "step": 4},
        {"name": "training.scheduler", "type": "categorical", "values": ["linear", "cosine"]},
    ],
}

# (id, changes to VALID_SWEEP: key path -> value, the field path the refusal must name)
INVALID_SWEEP_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-path", {"parameters.0.name": "training.learningRat"}, "spec.parameters[0].name"),
    ("path-into-a-section", {"parameters.0.name": "training"}, "spec.parameters[0].name"),
    ("min-not-below-max", {"parameters.0.min": 1e-3, "parameters.0.max": 1e-5}, "spec.parameters[0].max"),
    ("log-needs-positive-min", {"parameters.0.min": 0.0}, "spec.parameters[0].min"),
    ("log-and-step", {"parameters.0.step": 1e-5}, "spec.parameters[0].step"),
    ("int-not-whole", {"parameters.1.min": 4.5}, "spec.parameters[1].min"),
    ("step-beyond-range", {"parameters.1.step": 40}, "spec.parameters[1].step"),
    ("float-on-an-int-field", {"parameters.1.type": "float"}, "spec.parameters[1].type"),
    (
        "int-on-a-string-field",
        {
            "parameters.2.type": "int",
            "parameters.2.min": 1,
            "parameters.2.max": 2,
            "parameters.2.values": None,
        },
        "spec.parameters[2].type",
    ),
    ("categorical-without-values", {"parameters.2.values": None}, "spec.parameters[2].values"),
    ("range-without-max", {"parameters.1.max": None}, "spec.parameters[1].min"),
    (
        "duplicate-path",
        {"parameters.2": {"name": "model.lora.r", "type": "categorical", "values": [8]}},
        "spec.parameters",
    ),
    ("grid-needs-float-step", {"algorithm": {"name": "grid"}}, "spec.algorithm.name"),
    ("objective-metric-not-reported", {"objective": {"metric": "accuracy"}}, "spec.objective.metric"),
    (
        "no-evaluation",
        {"template.training.evaluation": {"strategy": "no"}},
        "spec.template.training.evaluation.strategy",
    ),
    ("unknown-algorithm", {"algorithm": {"name": "bohb"}}, "spec.algorithm.name"),
    ("unknown-pruner", {"earlyStopping": {"name": "asha"}}, "spec.earlyStopping.name"),
    ("parallel-above-max", {"maxTrials": 2, "parallelTrials": 3}, "spec.parallelTrials"),
    ("too-many-trials", {"maxTrials": 201}, "spec.maxTrials"),
    (
        "reduction-factor-one",
        {"earlyStopping": {"name": "hyperband", "reductionFactor": 1}},
        "spec.earlyStopping.reductionFactor",
    ),
    ("template-invalid", {"template.training.learningRate": -1}, "spec.template.training.learningRate"),
]


def invalid_sweep(changes: dict[str, Any]) -> dict[str, Any]:
    """VALID_SWEEP with each dotted key (list positions as numbers) set; None removes the key."""
    spec = copy.deepcopy(VALID_SWEEP)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        elif value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


def test_the_valid_sweep_parses_with_defaults():
    spec = parse_sweep_spec(VALID_SWEEP)
    assert spec.algorithm.name == "tpe" and spec.parallel_trials == 2 and spec.early_stopping.name == "none"
    assert spec.metric == "f1_macro" and spec.direction == "maximize"


@pytest.mark.parametrize(
    ("changes", "field"), [c[1:] for c in INVALID_SWEEP_CASES], ids=[c[0] for c in INVALID_SWEEP_CASES]
)
def test_invalid_sweeps_are_refused_naming_the_field(changes, field):
    with pytest.raises(SweepSpecError) as refused:
        parse_sweep_spec(invalid_sweep(changes))
    paths = [error.path for error in refused.value.errors]
    assert field in paths, (paths, str(refused.value))


def test_an_unknown_path_is_named_in_the_message():
    with pytest.raises(SweepSpecError, match=r"'training\.learningRat' is not a field"):
        parse_sweep_spec(invalid_sweep({"parameters.0.name": "training.learningRat"}))


def test_sweepable_paths_are_the_leaves_of_the_job_spec():
    leaves = spec_leaves()
    assert leaves["training.learningRate"] == "number" and leaves["model.lora.r"] == "integer"
    assert "training" not in leaves and "model.lora" not in leaves


def test_parameters_become_optuna_distributions():
    spec = parse_sweep_spec(VALID_SWEEP)
    lr, rank, scheduler = (distribution(p) for p in spec.parameters)
    assert lr == FloatDistribution(1e-5, 1e-3, log=True)
    assert rank == IntDistribution(4, 16, step=4)
    assert scheduler == CategoricalDistribution(["linear", "cosine"])


def test_categorical_lists_round_trip_through_optuna():
    spec = parse_sweep_spec(
        invalid_sweep(
            {
                "parameters.2": {
                    "name": "model.lora.targetModules",
                    "type": "categorical",
                    "values": [["query", "value"], ["all-linear"]],
                }
            }
        )
    )
    choice = distribution(spec.parameters[2]).choices[0]
    assert isinstance(choice, str)
    values = typed_values(
        spec.parameters,
        {"training.learningRate": 1e-4, "model.lora.r": 8.0, "model.lora.targetModules": choice},
    )
    assert values == {
        "training.learningRate": 1e-4,
        "model.lora.r": 8,
        "model.lora.targetModules": ["query", "value"],
    }


def test_grid_covers_every_combination_once():
    spec = parse_sweep_spec(
        invalid_sweep(
            {
                "parameters.0": {
                    "name": "training.learningRate",
                    "type": "float",
                    "min": 1e-4,
                    "max": 3e-4,
                    "step": 1e-4,
                }
            }
        )
    )
    space = grid_space(spec.parameters)
    assert space["training.learningRate"] == [1e-4, 2e-4, 3e-4]
    assert space["model.lora.r"] == [4, 8, 12, 16]
    points = grid_points(space)
    assert len(points) == 3 * 4 * 2 == len({tuple(sorted(p.items())) for p in points})


def test_paths_are_substituted_creating_absent_sections():
    spec = substitute(VALID_SWEEP["template"], {"model.lora.r": 8, "training.learningRate": 1e-4})
    assert spec["model"]["lora"] == {"r": 8} and spec["training"]["learningRate"] == 1e-4
    assert "lora" not in VALID_SWEEP["template"]["model"]  # the template is not changed
    assert set_path({}, "a.b.c", 1) == {"a": {"b": {"c": 1}}}


def test_a_trial_spec_gets_its_own_prefixes_and_refuses_an_invalid_substitution():
    spec = trial_spec(VALID_SWEEP["template"], {"training.learningRate": 1e-4}, "s-t3")
    assert spec["output"]["uri"] == "s3://models/sweep/s-t3"
    assert spec["checkpoint"]["uri"] == "s3://models/sweep/checkpoints/s-t3"
    with pytest.raises(TrialSpecError, match=r"spec\.template\.training\.learningRate"):
        trial_spec(VALID_SWEEP["template"], {"training.learningRate": 50.0}, "s-t4")
