"""The search space: sweep parameters as Optuna distributions, the grid, and each trial's spec.

Pure functions. Values are typed by the field they set (an int field gets an int even when Optuna
hands back a float), so a trial's spec is exactly what a user would have written by hand.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from finetune_api.sweep import Parameter
from finetune_api.sweep_paths import set_path

MAX_GRID_POINTS = 10_000


class SpaceError(ValueError):
    """The parameters cannot form the requested search space; the message names the parameter."""


def _choice(value: Any) -> CategoricalChoiceType:
    """Optuna categorical choices must be None, bool, int, float or str: lists travel as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    import json

    return json.dumps(value, sort_keys=True)


def _unchoice(value: Any, original: list[Any]) -> Any:
    for candidate in original:
        if _choice(candidate) == value:
            return candidate
    return value


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter (its model already checked ranges and steps)."""
    if parameter.type == "categorical":
        return CategoricalDistribution([_choice(v) for v in parameter.values or []])
    assert parameter.min is not None and parameter.max is not None
    if parameter.type == "int":
        return IntDistribution(
            int(parameter.min), int(parameter.max), log=parameter.log, step=int(parameter.step or 1)
        )
    return FloatDistribution(parameter.min, parameter.max, log=parameter.log, step=parameter.step)


def distributions(parameters: list[Parameter]) -> dict[str, BaseDistribution]:
    return {p.name: distribution(p) for p in parameters}


def grid_values(parameter: Parameter) -> list[Any]:
    """Every value a parameter takes on a grid: the categorical values, or min, min+step, ... <= max."""
    if parameter.type == "categorical":
        return [_choice(v) for v in parameter.values or []]
    assert parameter.min is not None and parameter.max is not None
    step = parameter.step if parameter.step is not None else (1 if parameter.type == "int" else None)
    if step is None:
        raise SpaceError(f"parameter {parameter.name}: grid needs a step for a float range")
    count = math.floor((parameter.max - parameter.min) / step + 1e-9) + 1
    if parameter.type == "int":
        return [int(parameter.min) + i * int(step) for i in range(count)]
    return [round(parameter.min + i * step, 12) for i in range(count)]


def grid_space(parameters: list[Parameter]) -> dict[str, list[Any]]:
    """The grid of Optuna's GridSampler; SpaceError when it has more than MAX_GRID_POINTS points."""
    space = {p.name: grid_values(p) for p in parameters}
    if grid_size(space) > MAX_GRID_POINTS:
        raise SpaceError(
            f"the grid has {grid_size(space)} points, more than {MAX_GRID_POINTS}; use fewer values or "
            "another algorithm"
        )
    return space


def grid_size(space: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in space.values())


def grid_points(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid, as parameter dicts (for tests and docs)."""
    names = sorted(space)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(space[n] for n in names))]


def typed_values(parameters: list[Parameter], suggested: dict[str, Any]) -> dict[str, Any]:
    """Optuna's suggestion as the values written into the spec (ints as ints, lists as lists)."""
    values: dict[str, Any] = {}
    for parameter in parameters:
        value = suggested[parameter.name]
        if parameter.type == "int":
            value = int(value)
        elif parameter.type == "float":
            value = float(value)
        else:
            value = _unchoice(value, list(parameter.values or []))
        values[parameter.name] = value
    return values


def optuna_params(parameters: list[Parameter], values: dict[str, Any]) -> dict[str, Any]:
    """The recorded (spec-typed) values as Optuna expects them back when the study is rebuilt."""
    return {
        p.name: _choice(values[p.name]) if p.type == "categorical" else values[p.name] for p in parameters
    }


def substitute(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The template (camelCase dict) with every parameter path set to its value."""
    spec = template
    for path, value in values.items():
        spec = set_path(spec, path, value)
    return spec
