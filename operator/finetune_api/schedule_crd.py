"""The FineTuneSchedule CustomResourceDefinition, assembled from the models like FineTuneJob's.

Beyond the generated schema it adds what the models cannot express on a field of their own: the
placeholder check on the template's URI fields (the same URI fields a FineTuneJob has, here allowed
to hold `${...}`), and the length limit of metadata.name that keeps child names valid.
"""

from typing import Any

from .constants import CATEGORIES, GROUP, VERSION
from .crd import structural_schema
from .schedule import (
    SCHEDULE_CRD_NAME,
    SCHEDULE_KIND,
    SCHEDULE_NAME_MAX_LENGTH,
    SCHEDULE_PLURAL,
    SCHEDULE_SHORT_NAMES,
    SCHEDULE_SINGULAR,
    FineTuneScheduleSpec,
    FineTuneScheduleStatus,
)
from .schedule_template import PLACEHOLDER_SPEC_FIELDS, TEXT_CEL, TEXT_MESSAGE

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
    spec = structural_schema(FineTuneScheduleSpec.model_json_schema(by_alias=True, mode="validation"))
    _placeholder_rules(spec["properties"]["jobTemplate"]["properties"]["spec"])
    status = structural_schema(FineTuneScheduleStatus.model_json_schema(by_alias=True, mode="validation"))
    return {
        "type": "object",
        "description": (
            "A FineTuneSchedule creates a FineTuneJob from its jobTemplate at the times of a cron schedule, "
            "with the semantics of a Kubernetes CronJob (concurrency policy, starting deadline, at most one "
            "catch-up run, history limits)."
        ),
        "required": ["spec"],
        "x-kubernetes-validations": [NAME_RULE],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "API version of the object: finetune.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": f"Kind of the object: {SCHEDULE_KIND}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def finetuneschedule_crd() -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": SCHEDULE_CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "finetune-operator",
                "app.kubernetes.io/part-of": "finetune-operator",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": SCHEDULE_KIND,
                "listKind": f"{SCHEDULE_KIND}List",
                "plural": SCHEDULE_PLURAL,
                "singular": SCHEDULE_SINGULAR,
                "shortNames": list(SCHEDULE_SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": SCHEDULE_PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": finetuneschedule_schema()},
                }
            ],
        },
    }
