"""FineTuneSchedule: a FineTuneJob created on a cron schedule, with Kubernetes CronJob semantics.

The fields mirror batch/v1 CronJob one for one (schedule, timeZone, jobTemplate, concurrencyPolicy,
startingDeadlineSeconds, suspend, the two history limits; status lastScheduleTime,
lastSuccessfulTime, active) so a Kubernetes user needs to learn nothing new. jobTemplate.spec is a
whole FineTuneJobSpec, checked with the same rules as a FineTuneJob at `kubectl apply`. The cron
grammar lives in schedule_cron.py, the placeholders of the template in schedule_template.py, the
time zone list in schedule_timezones.py.
"""

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from finetune_api.base import ApiModel, StatusModel
from finetune_api.constants import GROUP
from finetune_api.errors import FieldError, SpecError, describe_validation_error
from finetune_api.learning import section
from finetune_api.rules import RULE_ERROR_TYPE
from finetune_api.runtime import LabelKey
from finetune_api.schedule_cron import CRON_MESSAGE, CRON_PATTERN, SCHEDULE_MAX_LENGTH, parse_cron
from finetune_api.schedule_template import (
    PLACEHOLDER_SPEC_FIELDS,
    TEXT_CEL,
    TEXT_MESSAGE,
    PlaceholderError,
    check_text,
    has_placeholder_syntax,
)
from finetune_api.schedule_timezones import (
    DEFAULT_TIME_ZONE,
    TIME_ZONE_MAX_LENGTH,
    TIME_ZONE_MESSAGE,
    TIME_ZONE_PATTERN,
    check_time_zone,
    time_zone_cel,
)
from finetune_api.spec import FineTuneJobSpec
from finetune_api.status import ConditionStatus

SCHEDULE_KIND: Final = "FineTuneSchedule"
SCHEDULE_PLURAL: Final = "finetuneschedules"
SCHEDULE_SINGULAR: Final = "finetuneschedule"
SCHEDULE_SHORT_NAMES: Final = ("fts",)
SCHEDULE_CRD_NAME: Final = f"{SCHEDULE_PLURAL}.{GROUP}"

LABEL_SCHEDULE: Final = "finetune.dev/schedule"
"""Label on every FineTuneJob a schedule created: the schedule's name."""
ANNOTATION_SCHEDULED_TIME: Final = "finetune.dev/scheduled-time"
"""Annotation on every FineTuneJob a schedule created: its scheduled time, RFC 3339 in UTC."""

SCHEDULE_NAME_MAX_LENGTH: Final = 40
"""A child is named <schedule>-<unix minutes> (9 more characters) and names its own children
<job>-a<attempt>-<index>, which must stay a 63-character DNS label."""

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]


_CRON_CEL = "self.matches('" + CRON_PATTERN.replace("\\", "\\\\") + "')"
_RANGE_ORDER_CEL = "self.findAll('[0-9]+-[0-9]+').all(r, int(r.split('-')[0]) <= int(r.split('-')[1]))"
"""The one check of parse_cron that CEL can make: numeric ranges run upwards (5-1 is refused)."""


def _check_cron(text: str) -> str:
    parse_cron(text)
    return text


CronSchedule = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(
        min_length=1,
        max_length=SCHEDULE_MAX_LENGTH,
        json_schema_extra={
            # A CEL rule rather than `pattern`: the API server quotes a failed pattern in full, and this
            # one is long; the rule's message says what a cron expression looks like instead.
            "x-kubernetes-validations": [
                {"rule": _CRON_CEL, "message": CRON_MESSAGE},
                {
                    "rule": _RANGE_ORDER_CEL,
                    "message": "a range starts after it ends; write the smaller value first (e.g. 1-5)",
                },
            ],
        },
    ),
]

TimeZoneName = Annotated[
    str,
    AfterValidator(check_time_zone),
    Field(
        min_length=1,
        max_length=TIME_ZONE_MAX_LENGTH,
        json_schema_extra={
            "pattern": TIME_ZONE_PATTERN,
            "x-kubernetes-validations": [{"rule": time_zone_cel(), "message": TIME_ZONE_MESSAGE}],
        },
    ),
]


def _check_template_text(text: str) -> str:
    check_text(text)
    return text


TemplateText = Annotated[
    str,
    AfterValidator(_check_template_text),
    Field(
        max_length=4096,
        json_schema_extra={"x-kubernetes-validations": [{"rule": TEXT_CEL, "message": TEXT_MESSAGE}]},
    ),
]


class JobTemplateMetadata(ApiModel):
    """Labels and annotations copied to every FineTuneJob the schedule creates (placeholders expanded)."""

    labels: dict[LabelKey, TemplateText] = Field(
        default_factory=dict,
        max_length=64,
        description="Labels of each created FineTuneJob; values may hold placeholders (${scheduledDate}).",
    )
    annotations: dict[LabelKey, TemplateText] = Field(
        default_factory=dict,
        max_length=64,
        description="Annotations of each created FineTuneJob; values may hold placeholders.",
    )


def _placeholder_field_error(path: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(RULE_ERROR_TYPE, "{field}: {message}", {"field": path, "message": message})


def _string_leaves(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _string_leaves(item, (*path, str(key)))]
    if isinstance(value, list):
        return [
            leaf for index, item in enumerate(value) for leaf in _string_leaves(item, (*path, str(index)))
        ]
    return []


class JobTemplate(ApiModel):
    """The FineTuneJob each run creates: metadata labels and annotations, and a whole FineTuneJob spec."""

    metadata: JobTemplateMetadata = section(
        JobTemplateMetadata, "Labels and annotations of each created FineTuneJob."
    )
    spec: FineTuneJobSpec = Field(
        description=(
            "The FineTuneJob spec of each run, checked like a FineTuneJob's. model.uri, dataset.train, "
            "dataset.validation, dataset.test, checkpoint.uri and output.uri may hold placeholders: "
            "${scheduledTime}, ${scheduledTime:<strftime format>}, ${scheduledDate}, ${jobName}."
        )
    )

    @model_validator(mode="after")
    def _check_placeholders(self) -> Self:
        allowed = set(PLACEHOLDER_SPEC_FIELDS)
        for path, text in _string_leaves(self.spec.model_dump(by_alias=True, mode="json"), ()):
            dotted = "spec." + ".".join(path)
            if path in allowed:
                try:
                    check_text(text)
                except PlaceholderError as error:
                    raise _placeholder_field_error(dotted, str(error)) from None
            elif has_placeholder_syntax(text):
                fields = ", ".join(".".join(p) for p in PLACEHOLDER_SPEC_FIELDS)
                raise _placeholder_field_error(
                    dotted, f"placeholders are expanded only in {fields}; this field is used as written"
                )
        return self


class FineTuneScheduleSpec(ApiModel):
    """Desired state of a FineTuneSchedule: when to create a FineTuneJob, from which template, and how
    runs that overlap or were missed are handled (the semantics of a Kubernetes CronJob)."""

    schedule: CronSchedule = Field(
        description=(
            "When runs are due, as a cron expression: minute hour day-of-month month day-of-week (e.g. "
            "'0 2 * * *' is 02:00 every day), or @yearly, @monthly, @weekly, @daily or @hourly. Times are "
            "wall-clock times in timeZone."
        )
    )
    time_zone: TimeZoneName = Field(
        default=DEFAULT_TIME_ZONE,
        description=(
            "IANA time zone the schedule is read in, e.g. Europe/Berlin. A wall-clock time skipped by a "
            "daylight-saving change does not run; one that happens twice runs twice."
        ),
    )
    job_template: JobTemplate = Field(description="The FineTuneJob created for each run.")
    concurrency_policy: ConcurrencyPolicy = Field(
        default="Allow",
        description=(
            "What happens when a run is due while an earlier one is still active: Allow starts it anyway, "
            "Forbid skips it, Replace deletes the active run and starts the new one."
        ),
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        le=10**9,
        description=(
            "A run that could not start within this many seconds of its scheduled time (operator down, "
            "schedule suspended, Forbid) is skipped. Absent: a missed run always starts late (at most one)."
        ),
    )
    suspend: bool = Field(
        default=False, description="true creates no new runs; runs already created are left alone."
    )
    successful_jobs_history_limit: int = Field(
        default=3, ge=0, le=1000, description="Succeeded FineTuneJobs kept; older ones are deleted."
    )
    failed_jobs_history_limit: int = Field(
        default=1, ge=0, le=1000, description="Failed FineTuneJobs kept; older ones are deleted."
    )


class ObjectReference(StatusModel):
    """A reference to a FineTuneJob created by the schedule."""

    api_version: str | None = Field(default=None, description="API version of the referenced object.")
    kind: str | None = Field(default=None, description="Kind of the referenced object: FineTuneJob.")
    name: str = Field(description="Name of the FineTuneJob.")
    namespace: str | None = Field(default=None, description="Namespace of the FineTuneJob.")
    uid: str | None = Field(default=None, description="UID of the FineTuneJob.")


class ScheduleCondition(StatusModel):
    """An observation of the schedule (metav1.Condition)."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Aspect observed: Ready (the schedule is valid and creating runs)."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="CamelCase cause: Scheduling, Suspended, InvalidSpec or InvalidTemplate."
    )
    message: Annotated[str, Field(max_length=32768)] | None = Field(
        default=None, description="Human-readable details, e.g. the next run time or what to fix."
    )
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class FineTuneScheduleStatus(StatusModel):
    """Observed state of a FineTuneSchedule, written by the operator."""

    last_schedule_time: datetime | None = Field(
        default=None, description="Scheduled time of the most recent run that was created."
    )
    last_successful_time: datetime | None = Field(
        default=None, description="When the most recent successful run finished."
    )
    next_schedule_time: datetime | None = Field(
        default=None, description="The next time a run is due (absent while suspended)."
    )
    active: list[ObjectReference] = Field(
        default_factory=list, description="FineTuneJobs of this schedule that have not finished."
    )
    active_count: int = Field(default=0, ge=0, description="Number of entries in active (printer column).")
    conditions: list[ScheduleCondition] = Field(
        default_factory=list,
        description="Observations of the schedule, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )


class FineTuneSchedule(BaseModel):
    """A FineTuneJob created on a cron schedule."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["finetune.dev/v1alpha1"] = Field(default="finetune.dev/v1alpha1", alias="apiVersion")
    kind: Literal["FineTuneSchedule"] = Field(default=SCHEDULE_KIND)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: FineTuneScheduleSpec = Field(description="Desired state.")
    status: FineTuneScheduleStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )


class ScheduleSpecError(SpecError):
    """A FineTuneSchedule spec was refused; `errors` lists every offending field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.args = ("invalid FineTuneSchedule: " + "; ".join(str(e) for e in errors),)


def parse_schedule_spec(data: Any, *, path: str = "spec") -> FineTuneScheduleSpec:
    """Validate a camelCase FineTuneSchedule spec; ScheduleSpecError names each offending field."""
    try:
        return FineTuneScheduleSpec.model_validate(data)
    except ValidationError as error:
        raise ScheduleSpecError(describe_validation_error(error, prefix=path)) from None
