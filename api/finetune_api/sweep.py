"""FineTuneSweep: a hyperparameter search whose trials are FineTuneJobs.

The spec names a FineTuneJob template, the parameters to vary (dotted paths into the template, see
sweep_paths.py), the objective, the search algorithm and the early-stopping method; the operator
runs the trials with Optuna and records everything needed to rebuild the study in `status`, so no
database is needed (operator/finetune_operator/sweep/). Each rule is written once with its Python
check and its CEL twin (rules.py), so `kubectl apply` and the operator refuse the same manifests with
the same words. The user guide is docs/sweeps.md.
"""

from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from finetune_api.base import ApiModel
from finetune_api.constants import GROUP
from finetune_api.errors import FieldError, SpecError, describe_validation_error
from finetune_api.learning import EvaluationMetric, section
from finetune_api.rules import Rule
from finetune_api.spec import FineTuneJobSpec
from finetune_api.sweep_paths import float_paths, int_paths, spec_leaves, unknown_path_message
from finetune_api.sweep_status import (
    MAX_TRIALS_LIMIT as MAX_TRIALS_LIMIT,
)
from finetune_api.sweep_status import (
    BestTrial as BestTrial,
)
from finetune_api.sweep_status import (
    Evaluation as Evaluation,
)
from finetune_api.sweep_status import (
    FineTuneSweepStatus as FineTuneSweepStatus,
)
from finetune_api.sweep_status import (
    SweepCondition as SweepCondition,
)
from finetune_api.sweep_status import (
    TrialCounts as TrialCounts,
)
from finetune_api.sweep_status import (
    TrialRecord as TrialRecord,
)
from finetune_api.sweep_status import (
    TrialState as TrialState,
)

SWEEP_KIND: Final = "FineTuneSweep"
SWEEP_PLURAL: Final = "finetunesweeps"
SWEEP_SINGULAR: Final = "finetunesweep"
SWEEP_SHORT_NAMES: Final = ("ftsweep",)
SWEEP_CRD_NAME: Final = f"{SWEEP_PLURAL}.{GROUP}"

LABEL_SWEEP: Final = "finetune.dev/sweep"
"""Label on every trial FineTuneJob: the sweep's name."""
LABEL_TRIAL_INDEX: Final = "finetune.dev/trial-index"
"""Label on every trial FineTuneJob: its index in the sweep (0, 1, ...)."""

SWEEP_NAME_MAX_LENGTH: Final = 40
"""A trial is named <sweep>-t<index> and names its own children <trial>-a<attempt>-<index>."""
DEFAULT_MAX_TRIALS: Final = 10

ParameterType = Literal["float", "int", "categorical"]
AlgorithmName = Literal["grid", "random", "tpe", "cmaes", "gp"]
EarlyStoppingName = Literal["none", "median", "hyperband", "successiveHalving"]
Direction = Literal["maximize", "minimize"]

LOWER_IS_BETTER: Final = ("loss", "perplexity")


def _cel_list(items: list[str]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def _check_path(path: str) -> str:
    if path not in spec_leaves():
        raise ValueError(unknown_path_message(path))
    return path


def _path_cel() -> str:
    return f"self in {_cel_list(list(spec_leaves()))}"


ParameterPath = Annotated[
    str,
    AfterValidator(_check_path),
    Field(
        min_length=1,
        max_length=256,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": _path_cel(),
                    "messageExpression": (
                        '"\'" + self + "\' is not a field of the FineTuneJob spec; name a field inside '
                        "spec.template with its camelCase dotted path, e.g. training.learningRate or "
                        'model.lora.r (kubectl explain finetunejob.spec lists them)"'
                    ),
                    "message": "not a field of the FineTuneJob spec",
                }
            ]
        },
    ),
]


def _is_integral(value: float | None) -> bool:
    return value is None or float(value).is_integer()


_RANGED = "(self.type == 'categorical' || (has(self.min) && has(self.max)))"

PARAMETER_RULES: tuple[Rule, ...] = (
    Rule(
        field="min",
        message="float and int parameters need min and max",
        cel=_RANGED,
        holds=lambda p: p.type == "categorical" or (p.min is not None and p.max is not None),
    ),
    Rule(
        field="max",
        message="max must be greater than min",
        cel="!has(self.min) || !has(self.max) || self.min < self.max",
        holds=lambda p: p.min is None or p.max is None or p.min < p.max,
    ),
    Rule(
        field="min",
        message="a log-scaled range needs min > 0",
        cel="!self.log || !has(self.min) || self.min > 0.0",
        holds=lambda p: not p.log or p.min is None or p.min > 0,
    ),
    Rule(
        field="step",
        message="step and log cannot be combined (Optuna samples a log range continuously)",
        cel="!self.log || !has(self.step) || (self.type == 'int' && self.step == 1.0)",
        holds=lambda p: not p.log or p.step is None or (p.type == "int" and p.step == 1),
    ),
    Rule(
        field="step",
        message="step must not exceed max - min",
        cel="!has(self.step) || !has(self.min) || !has(self.max) || self.step <= self.max - self.min",
        holds=lambda p: p.step is None or p.min is None or p.max is None or p.step <= p.max - p.min,
    ),
    Rule(
        field="min",
        message="an int parameter needs whole numbers for min, max and step",
        cel=(
            "self.type != 'int' || ((!has(self.min) || double(int(self.min)) == self.min) && "
            "(!has(self.max) || double(int(self.max)) == self.max) && "
            "(!has(self.step) || double(int(self.step)) == self.step))"
        ),
        holds=lambda p: p.type != "int" or all(_is_integral(v) for v in (p.min, p.max, p.step)),
    ),
    Rule(
        field="min",
        message="a categorical parameter takes values, not min, max, step or log",
        cel=(
            "self.type != 'categorical' || (!has(self.min) && !has(self.max) && !has(self.step) && !self.log)"
        ),
        holds=lambda p: (
            p.type != "categorical" or (p.min is None and p.max is None and p.step is None and not p.log)
        ),
    ),
    # CEL cannot see `values` (its items are untyped: numbers, strings, booleans or lists), so the two
    # rules about it are checked by the model only: the sweep controller refuses such a sweep.
    Rule(
        field="values",
        message="a categorical parameter needs values (at least one)",
        cel=None,
        holds=lambda p: p.type != "categorical" or bool(p.values),
    ),
    Rule(
        field="values",
        message="values is only for categorical parameters; float and int parameters use min and max",
        cel=None,
        holds=lambda p: p.type == "categorical" or p.values is None,
    ),
    Rule(
        field="type",
        message="a float parameter must name a number field (e.g. training.learningRate); use int or "
        "categorical for other fields",
        cel=f"self.type != 'float' || self.name in {_cel_list(float_paths())}",
        holds=lambda p: p.type != "float" or p.name in float_paths(),
    ),
    Rule(
        field="type",
        message="an int parameter must name an integer or number field (e.g. model.lora.r); use "
        "categorical for other fields",
        cel=f"self.type != 'int' || self.name in {_cel_list(int_paths())}",
        holds=lambda p: p.type != "int" or p.name in int_paths(),
    ),
)


class Parameter(ApiModel):
    """One hyperparameter to vary: a field of the template and the range or values it takes."""

    RULES = PARAMETER_RULES

    name: ParameterPath = Field(
        description=(
            "camelCase dotted path of the field inside spec.template, e.g. training.learningRate, "
            "training.batchSizePerDevice or model.lora.r."
        )
    )
    type: ParameterType = Field(
        description="float (min, max, optional log or step), int (min, max, optional step or log) or "
        "categorical (values)."
    )
    min: float | None = Field(default=None, description="Smallest value (float and int).")
    max: float | None = Field(default=None, description="Largest value, included (float and int).")
    step: Annotated[float, Field(gt=0)] | None = Field(
        default=None,
        description="Discretisation step from min (float and int; int defaults to 1). grid needs it for "
        "float parameters.",
    )
    log: bool = Field(default=False, description="Sample on a log scale (needs min > 0; not with step).")
    values: list[Any] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The values a categorical parameter takes (numbers, strings, booleans or lists).",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )


class Objective(ApiModel):
    """What a trial is judged by."""

    metric: EvaluationMetric | None = Field(
        default=None,
        description=(
            "Metric to optimise; absent uses the template's training.evaluation.metric. Must be that "
            "metric, loss or perplexity: the operator reads it from each trial's status.progress."
        ),
    )
    direction: Direction | None = Field(
        default=None,
        description="maximize or minimize; absent: minimize for loss and perplexity, maximize otherwise.",
    )
    goal: float | None = Field(
        default=None,
        description="Stop starting trials once a trial reaches this value (the running ones finish).",
    )


class Algorithm(ApiModel):
    """How the next trial's parameters are chosen (an Optuna sampler)."""

    name: AlgorithmName = Field(
        default="tpe",
        description=(
            "grid (every combination once; float parameters need step), random, tpe (Bayesian, "
            "Tree-structured Parzen Estimator), cmaes (CMA-ES, numeric parameters) or gp (Gaussian process)."
        ),
    )
    seed: int = Field(
        default=0, ge=0, le=2**31 - 1, description="Seed of the sampler (trial n uses seed + n)."
    )


class EarlyStoppingPolicy(ApiModel):
    """Which trials are stopped before their end from their evaluations (an Optuna pruner).

    Resources are counted in evaluations: the n-th evaluation of a trial is its step n.
    """

    name: EarlyStoppingName = Field(
        default="none",
        description=(
            "none; median (stop a trial whose best value is worse than the median of completed trials at "
            "the same evaluation); hyperband; successiveHalving."
        ),
    )
    startup_trials: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="median: no trial is stopped until this many trials have completed (warm-up trials).",
    )
    warmup_evaluations: int = Field(
        default=0,
        ge=0,
        le=100000,
        description="median: a trial is not stopped before this many of its own evaluations.",
    )
    min_resource: int = Field(
        default=1,
        ge=1,
        le=100000,
        description="hyperband and successiveHalving: evaluations every trial gets before the first cut.",
    )
    max_resource: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="hyperband: evaluations of a full trial; absent: learned from the first completed trial.",
    )
    reduction_factor: int = Field(
        default=3,
        ge=2,
        le=100,
        description="hyperband and successiveHalving: 1/reductionFactor of the trials go on at each rung.",
    )


SPEC_RULES: tuple[Rule, ...] = (
    Rule(
        field="parameters",
        message="each parameter path may appear only once",
        cel="self.parameters.all(p, self.parameters.exists_one(q, q.name == p.name))",
        holds=lambda s: len({p.name for p in s.parameters}) == len(s.parameters),
    ),
    Rule(
        field="algorithm.name",
        message="grid needs a step on every float parameter (or make it categorical)",
        cel="self.algorithm.name != 'grid' || self.parameters.all(p, p.type != 'float' || has(p.step))",
        holds=lambda s: (
            s.algorithm.name != "grid" or all(p.type != "float" or p.step is not None for p in s.parameters)
        ),
    ),
    Rule(
        field="template.training.evaluation.strategy",
        message="a sweep needs evaluations to judge its trials; use steps or epoch (and validation data)",
        cel="self.template.training.evaluation.strategy != 'no'",
        holds=lambda s: s.template.training.evaluation.strategy != "no",
    ),
    Rule(
        field="objective.metric",
        message="must be the template's training.evaluation.metric, loss or perplexity (the metrics a "
        "trial's status reports)",
        cel=(
            "!has(self.objective.metric) || self.objective.metric in ['loss', 'perplexity'] || "
            "self.objective.metric == self.template.training.evaluation.metric"
        ),
        holds=lambda s: (
            s.objective.metric is None
            or s.objective.metric in LOWER_IS_BETTER
            or s.objective.metric == s.template.training.evaluation.metric
        ),
    ),
    Rule(
        field="parallelTrials",
        message="must not exceed maxTrials",
        cel="!has(self.maxTrials) || self.parallelTrials <= self.maxTrials",
        holds=lambda s: s.max_trials is None or s.parallel_trials <= s.max_trials,
    ),
)


class FineTuneSweepSpec(ApiModel):
    """Desired state of a FineTuneSweep: the trial template, the search space, the objective, how
    trials are chosen and stopped, and how many run."""

    RULES = SPEC_RULES

    template: FineTuneJobSpec = Field(
        description=(
            "The FineTuneJob spec every trial starts from, checked like a FineTuneJob's. Each trial writes "
            "under <output.uri>/<trial> and <checkpoint uri>/<trial>."
        )
    )
    parameters: list[Parameter] = Field(
        min_length=1, max_length=32, description="The hyperparameters to vary (one entry per field)."
    )
    objective: Objective = section(Objective, "The metric trials are judged by and its direction.")
    algorithm: Algorithm = section(Algorithm, "How parameters are chosen (Optuna sampler).")
    early_stopping: EarlyStoppingPolicy = section(
        EarlyStoppingPolicy, "How hopeless trials are stopped early (Optuna pruner)."
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TRIALS_LIMIT,
        description=f"Trials to run; absent: the whole grid for grid, {DEFAULT_MAX_TRIALS} otherwise.",
    )
    parallel_trials: int = Field(default=2, ge=1, le=50, description="Trials running at the same time.")
    max_failed_trials: int | None = Field(
        default=3,
        ge=1,
        le=MAX_TRIALS_LIMIT,
        description="The sweep fails when this many trials have failed (pruned trials do not count).",
    )
    suspend: bool = Field(
        default=False,
        description="true suspends the running trials (they resume from their checkpoints) and starts none.",
    )

    @property
    def metric(self) -> str:
        """The objective metric, defaulted from the template."""
        return self.objective.metric or self.template.training.evaluation.metric

    @property
    def direction(self) -> Direction:
        if self.objective.direction is not None:
            return self.objective.direction
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"


class FineTuneSweep(BaseModel):
    """A hyperparameter search whose trials are FineTuneJobs."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["finetune.dev/v1alpha1"] = Field(default="finetune.dev/v1alpha1", alias="apiVersion")
    kind: Literal["FineTuneSweep"] = Field(default=SWEEP_KIND)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: FineTuneSweepSpec = Field(description="Desired state.")
    status: FineTuneSweepStatus | None = Field(default=None, description="Observed state.")


class SweepSpecError(SpecError):
    """A FineTuneSweep spec was refused; `errors` lists every offending field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.args = ("invalid FineTuneSweep: " + "; ".join(str(e) for e in errors),)


def parse_sweep_spec(data: Any, *, path: str = "spec") -> FineTuneSweepSpec:
    """Validate a camelCase FineTuneSweep spec; SweepSpecError names each offending field."""
    try:
        return FineTuneSweepSpec.model_validate(data)
    except ValidationError as error:
        raise SweepSpecError(describe_validation_error(error, prefix=path)) from None
