"""The Optuna study of a sweep, rebuilt from the sweep's status at every decision.

Kubernetes is the source of truth: `status.history` holds every trial's parameters, state, value,
evaluations and Optuna's per-trial bookkeeping (`samplerState`: the grid point, the pruner's rungs),
so an in-memory study rebuilt from it with `optuna.trial.create_trial` is the study as it was, and
no database is needed. Two decisions are made on it:

- `suggest`: the parameters of trial n, from the sampler seeded with seed + n (a rebuilt random or
  TPE sampler seeded alike would otherwise repeat trial 0's suggestion);
- `should_prune`: whether a running trial's evaluations so far condemn it.

Both return the trial's new bookkeeping (`samplerState`), plain JSON. Stock CMA-ES keeps its search
state (mean, step size, covariance) as a pickled optimizer in a trial's system attrs; a pickle must
never be read back from the API (a status writer could make the operator unpickle anything), and a
study rebuilt without it restarts CMA-ES at its first update on every pass, so it never gets past
generation 1. `ReplayedCmaEsSampler` instead rebuilds the optimizer by replaying the recorded
generations (every trial records `cma:generation`; its parameters and value are in status): CMA-ES's
update is deterministic, so this is the optimizer Optuna would have unpickled, and it survives an
operator restart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler
from optuna.study import StudyDirection
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


class SamplerUnavailable(RuntimeError):
    """The algorithm needs a package the operator image lacks (gp needs torch); the message says so."""


def _sampler_state(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's Optuna system attrs as status may hold them: plain JSON only.

    Every sampler and pruner we build writes JSON (grid point, rungs, CMA-ES generation); anything
    else (a pickled optimizer) is dropped so that nothing unpicklable ever reaches status.
    """
    kept = {}
    for key, value in attrs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


class ReplayedCmaEsSampler(CmaEsSampler):
    """Optuna's CMA-ES, its optimizer rebuilt by replaying the recorded generations (see the module).

    Optuna's sampler tells the optimizer the first `population_size` completed trials of its current
    generation, then pickles it into the new trial. Here `_restore_optimizer` starts from the same
    initial optimizer and tells it every complete generation in turn, so `sample_relative` always
    finds its generation incomplete and never pickles. Only the default variant (plain CMA, no margin,
    no warm start, no restarts) is built here.
    """

    def __init__(self, seed: int):
        super().__init__(seed=seed, warn_independent_sampling=False)
        self._replay_for: tuple[dict[str, BaseDistribution], StudyDirection] | None = None

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self._replay_for = (search_space, study.direction)
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self._replay_for = None

    def _restore_optimizer(self, completed_trials: list[FrozenTrial]) -> Any:
        if self._replay_for is None:  # pragma: no cover - Optuna calls it from sample_relative only
            return None
        search_space, direction = self._replay_for
        trans = _SearchSpaceTransform(search_space, transform_step=True, transform_0_1=True)
        optimizer = self._init_optimizer(trans, direction)
        sign = 1.0 if direction == StudyDirection.MINIMIZE else -1.0
        while True:
            generation = self._get_solution_trials(completed_trials, optimizer.generation)
            if len(generation) < optimizer.population_size:
                return optimizer
            optimizer.tell(
                [
                    (trans.transform(t.params), sign * float(t.value))  # type: ignore[arg-type]
                    for t in generation[: optimizer.population_size]
                ]
            )


def make_sampler(spec: FineTuneSweepSpec, index: int) -> BaseSampler:
    """The sampler that chooses trial `index`'s parameters."""
    seed = spec.algorithm.seed + index
    name = spec.algorithm.name
    if name == "grid":
        return GridSampler(grid_space(spec.parameters), seed=spec.algorithm.seed)
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "cmaes":
        return ReplayedCmaEsSampler(seed=seed)
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


def _frozen(spec: FineTuneSweepSpec, record: Mapping[str, Any]) -> FrozenTrial | None:
    """The recorded trial as Optuna's FrozenTrial; None when it no longer fits the parameters."""
    state = STATE_FOR_OPTUNA.get(str(record.get("state")), TrialState.FAIL)
    value = record.get("value")
    if state == TrialState.COMPLETE and (value is None or not math.isfinite(float(value))):
        state = TrialState.FAIL
    attrs = dict(record.get("samplerState") or {})
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
        frozen = _frozen(spec, record)
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
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trial `index`'s parameter values (typed as the spec fields) and its samplerState."""
    study, _ = rebuild(spec, records, study_name, make_sampler(spec, index))
    trial = study.ask(distributions(spec.parameters))
    values = typed_values(spec.parameters, trial.params)
    attrs = study._storage.get_trial(trial._trial_id).system_attrs
    return values, _sampler_state(attrs)


def should_prune(
    spec: FineTuneSweepSpec,
    records: list[Mapping[str, Any]],
    study_name: str,
    index: int,
) -> tuple[bool, dict[str, Any]]:
    """Whether the pruner stops running trial `index` now (its evaluations are in its record), and
    the trial's samplerState after the pruner's bookkeeping."""
    study, ids = rebuild(spec, records, study_name)
    if index not in ids:
        return False, {}
    trial_id = ids[index]
    trial = study._storage.get_trial(trial_id)
    if trial.last_step is None:
        return False, _sampler_state(trial.system_attrs)
    prune = bool(study.pruner.prune(study, trial))
    return prune, _sampler_state(study._storage.get_trial(trial_id).system_attrs)
