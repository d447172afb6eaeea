"""The FineTuneSchedule CustomResourceDefinition, assembled from the models like FineTuneJob's.

Beyond the generated schema it adds what the models cannot express on a field of their own: the
placeholder check on the template's URI fields (the same URI fields a FineTuneJob has, here allowed
to hold `${...}`), and the length limit of metadata.name that keeps child names valid.
"""

from typing import Any

from finetune_api.crd import crd_document, model_schema, object_schema
from finetune_api.schedule import (
    SCHEDULE_CRD_NAME,
    SCHEDULE_KIND,
    SCHEDULE_NAME_MAX_LENGTH,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_SINGULAR,
    FineTuneScheduleSpec,
    FineTuneScheduleStatus,
)
from finetune_api.schedule_template import PLACEHOLDER_SPEC_FIELDS, TEXT_CEL, TEXT_MESSAGE

SCHEDULE_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule", "description": "Cron schedule."},
    {
        "name": "Timezone",
        "type": "string",
        "jsonPath": ".spec.timeZone",
        "description": "Time zone.",
        "priority": 1,
    },
    {
        "name": "Suspend",
        "type": "boolean",
        "jsonPath": ".spec.suspend",
        "description": "No new runs while true.",
    },
    {
        "name": "Active",
        "type": "integer",
        "jsonPath": ".status.activeCount",
        "description": "Runs not finished.",
    },
    {
        "name": "Last Schedule",
        "type": "date",
        "jsonPath": ".status.lastScheduleTime",
        "description": "Scheduled time of the latest run created.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

NAME_RULE = {
    "rule": f"self.metadata.name.size() <= {SCHEDULE_NAME_MAX_LENGTH}",
    "message": (
        f"metadata.name must be at most {SCHEDULE_NAME_MAX_LENGTH} characters: each run is named "
        "<schedule>-<unix minutes> and must stay a valid FineTuneJob name"
    ),
}


LABEL_NAME_RULE = {
    "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": (
        "metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a letter; "
        "no '.'): each run <schedule>-<unix minutes> must be a valid FineTuneJob name"
    ),
}


def _placeholder_rules(job_spec: dict[str, Any]) -> None:
    """Add the placeholder CEL check to each template field that may hold placeholders."""
    for path in PLACEHOLDER_SPEC_FIELDS:
        node = job_spec
        for key in path:
            node = node["properties"][key]
        node["x-kubernetes-validations"] = [
            *node.get("x-kubernetes-validations", []),
            {"rule": TEXT_CEL, "message": TEXT_MESSAGE},
        ]


def finetuneschedule_schema() -> dict[str, Any]:
    """openAPIV3Schema of the FineTuneSchedule kind."""
    spec = model_schema(FineTuneScheduleSpec)
    _placeholder_rules(spec["properties"]["jobTemplate"]["properties"]["spec"])
    return object_schema(
        kind=SCHEDULE_KIND,
        description=(
            "A FineTuneSchedule creates a FineTuneJob from its jobTemplate at the times of a cron schedule, "
            "with the semantics of a Kubernetes CronJob (concurrency policy, starting deadline, at most one "
            "catch-up run, history limits)."
        ),
        spec=spec,
        status=model_schema(FineTuneScheduleStatus),
        validations=[NAME_RULE, LABEL_NAME_RULE],
    )


def finetuneschedule_crd() -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return crd_document(
        name=SCHEDULE_CRD_NAME,
        kind=SCHEDULE_KIND,
        plural=SCHEDULE_PLURAL,
        singular=SCHEDULE_SINGULAR,
        short_names=SCHEDULE_SHORT_NAMES,
        printer_columns=SCHEDULE_PRINTER_COLUMNS,
        schema=finetuneschedule_schema(),
    )
