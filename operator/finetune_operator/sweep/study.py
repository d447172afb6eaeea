"""The Optuna study of a sweep, rebuilt from the sweep's status at every decision.

Kubernetes is the source of truth: `status.history` holds every trial's parameters, state, value,
evaluations and Optuna's per-trial bookkeeping (`samplerState`: the grid point, the pruner's rungs),
so an in-memory study rebuilt from it with `optuna.trial.create_trial` is the study as it was, and
no database is needed. Two decisions are made on it:

- `suggest`: the parameters of trial n, from the sampler seeded with seed + n (a rebuilt random or
  TPE sampler seeded alike would otherwise repeat trial 0's suggestion);
- `should_prune`: whether a running trial's evaluations so far condemn it.

Both return the trial's new bookkeeping. The one piece of Optuna state that is not JSON is CMA-ES's
pickled optimizer; it is never read back from the API (a status writer could make the operator
unpickle anything) but handed to the caller as *volatile* state that the controller keeps in memory,
so after an operator restart CMA-ES starts a fresh generation from the recorded trials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from finetune_api.sweep import FineTuneSweepSpec
from finetune_operator.sweep.space import distributions, grid_space, optuna_params, typed_values

optuna.logging.set_verbosity(optuna.logging.ERROR)

STATE_FOR_OPTUNA = {
    "Pending": TrialState.RUNNING,
    "Running": TrialState.RUNNING,
    "Succeeded": TrialState.COMPLETE,
    "Pruned": TrialState.PRUNED,
    "Failed": TrialState.FAIL,
    "Stopped": TrialState.FAIL,
}
VOLATILE_MARK = "optimizer"
"""Bookkeeping keys holding pickled objects (CMA-ES's `cma:optimizer:<n>`): memory only, never status."""

Volatile = Mapping[int, Mapping[str, Any]]


class SamplerUnavailable(RuntimeError):
    """The algorithm needs a package the operator image lacks (gp needs torch); the message says so."""


@dataclass
class Bookkeeping:
    """A trial's Optuna bookkeeping after a decision: what goes to status, what stays in memory."""

    persisted: dict[str, Any] = field(default_factory=dict)
    volatile: dict[str, Any] = field(default_factory=dict)


def _split(attrs: Mapping[str, Any]) -> Bookkeeping:
    kept = Bookkeeping()
    for key, value in attrs.items():
        if VOLATILE_MARK in key:
            kept.volatile[key] = value
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            kept.volatile[key] = value
            continue
        kept.persisted[key] = value
    return kept


def make_sampler(spec: FineTuneSweepSpec, index: int) -> BaseSampler:
    """The sampler that chooses trial `index`'s parameters."""
    seed = spec.algorithm.seed + index
    name = spec.algorithm.name
    if name == "grid":
        return GridSampler(grid_space(spec.parameters), seed=spec.algorithm.seed)
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "cmaes":
        return CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            from optuna.samplers import GPSampler

            return GPSampler(seed=seed)
        except ImportError as error:  # pragma: no cover - depends on the image
            raise SamplerUnavailable(f"algorithm gp needs torch and scipy in the operator: {error}") from None
    max_trials = spec.max_trials or 10
    return TPESampler(
        seed=seed,
        n_startup_trials=max(1, min(10, max_trials // 4)),
        constant_liar=spec.parallel_trials > 1,
    )


def make_pruner(spec: FineTuneSweepSpec) -> BasePruner:
    """The pruner of spec.earlyStopping (evaluations are the pruner's steps)."""
    policy = spec.early_stopping
    if policy.name == "median":
        return MedianPruner(n_startup_trials=policy.startup_trials, n_warmup_steps=policy.warmup_evaluations)
    if policy.name == "hyperband":
        return HyperbandPruner(
            min_resource=policy.min_resource,
            max_resource=policy.max_resource or "auto",
            reduction_factor=policy.reduction_factor,
        )
    if policy.name == "successiveHalving":
        return SuccessiveHalvingPruner(
            min_resource=policy.min_resource, reduction_factor=policy.reduction_factor
        )
    return NopPruner()


def _frozen(spec: FineTuneSweepSpec, record: Mapping[str, Any], volatile: Volatile) -> FrozenTrial | None:
    """The recorded trial as Optuna's FrozenTrial; None when it no longer fits the parameters."""
    state = STATE_FOR_OPTUNA.get(str(record.get("state")), TrialState.FAIL)
    value = record.get("value")
    if state == TrialState.COMPLETE and (value is None or not math.isfinite(float(value))):
        state = TrialState.FAIL
    attrs = {**(record.get("samplerState") or {}), **(volatile.get(int(record["index"])) or {})}
    intermediate = {int(e["evaluation"]): float(e["value"]) for e in record.get("evaluations") or []}
    try:
        return create_trial(
            state=state,
            value=float(value) if state == TrialState.COMPLETE else None,
            params=optuna_params(spec.parameters, record.get("parameters") or {}),
            distributions=distributions(spec.parameters),
            intermediate_values=intermediate,
            system_attrs=attrs,
        )
    except (KeyError, ValueError, TypeError):
        return None


def rebuild(
    spec: FineTuneSweepSpec,
    records: list[Mapping[str, Any]],
    study_name: str,
    sampler: BaseSampler | None = None,
    volatile: Volatile | None = None,
) -> tuple[optuna.Study, dict[int, int]]:
    """The in-memory study holding every recorded trial; also trial index -> Optuna trial id."""
    study = optuna.create_study(
        study_name=study_name,
        direction=spec.direction,
        sampler=sampler or RandomSampler(seed=spec.algorithm.seed),
        pruner=make_pruner(spec),
    )
    ids: dict[int, int] = {}
    for record in sorted(records, key=lambda r: int(r["index"])):
        frozen = _frozen(spec, record, volatile or {})
        if frozen is None:
            continue
        study.add_trial(frozen)
        ids[int(record["index"])] = study._storage.get_all_trials(study._study_id, deepcopy=False)[
            -1
        ]._trial_id
    return study, ids


def suggest(
    spec: FineTuneSweepSpec,
    records: list[Mapping[str, Any]],
    study_name: str,
    index: int,
    volatile: Volatile | None = None,
) -> tuple[dict[str, Any], Bookkeeping]:
    """Trial `index`'s parameter values (typed as the spec fields) and its bookkeeping."""
    study, _ = rebuild(spec, records, study_name, make_sampler(spec, index), volatile)
    trial = study.ask(distributions(spec.parameters))
    values = typed_values(spec.parameters, trial.params)
    attrs = study._storage.get_trial(trial._trial_id).system_attrs
    return values, _split(attrs)


def should_prune(
    spec: FineTuneSweepSpec,
    records: list[Mapping[str, Any]],
    study_name: str,
    index: int,
    volatile: Volatile | None = None,
) -> tuple[bool, Bookkeeping]:
    """Whether the pruner stops running trial `index` now (its evaluations are in its record)."""
    study, ids = rebuild(spec, records, study_name, volatile=volatile)
    if index not in ids:
        return False, Bookkeeping()
    trial_id = ids[index]
    trial = study._storage.get_trial(trial_id)
    if trial.last_step is None:
        return False, _split(trial.system_attrs)
    prune = bool(study.pruner.prune(study, trial))
    return prune, _split(study._storage.get_trial(trial_id).system_attrs)
