"""The FineTuneJob manifest of one scheduled run: deterministic name, ownership, expanded template.

The name is <schedule>-<scheduled time in Unix minutes>, as CronJob names its Jobs. It is the lock
that makes creation idempotent: an operator that restarts between creating a run and recording it in
status creates the same name again, gets AlreadyExists, and treats that as success.
"""

import copy
from datetime import datetime, tzinfo
from typing import Any

from finetune_api import SpecError, parse_spec
from finetune_api.schedule import ANNOTATION_SCHEDULED_TIME, LABEL_SCHEDULE, SCHEDULE_KIND
from finetune_api.schedule_template import PLACEHOLDER_SPEC_FIELDS, PlaceholderValues, render_text
from finetune_operator.schedule.children import format_time

SCHEDULE_API_VERSION = "finetune.dev/v1alpha1"


class TemplateError(ValueError):
    """The job template cannot become a valid FineTuneJob; the message names the field to fix."""


def child_name(schedule_name: str, scheduled_time: datetime) -> str:
    """<schedule>-<unix minutes of the scheduled time>."""
    return f"{schedule_name}-{int(scheduled_time.timestamp()) // 60}"


def _render_spec(spec: dict[str, Any], values: PlaceholderValues) -> dict[str, Any]:
    rendered = copy.deepcopy(spec)
    for path in PLACEHOLDER_SPEC_FIELDS:
        parent = rendered
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), str):
            parent[path[-1]] = render_text(parent[path[-1]], values)
    return rendered


def build_child(schedule: dict[str, Any], scheduled_time: datetime, zone: tzinfo) -> dict[str, Any]:
    """The FineTuneJob to create for `scheduled_time` from the schedule object `schedule` (as stored).

    Raises TemplateError when the expanded spec is not a valid FineTuneJob spec (for example a
    strftime format that put a space into a URI).
    """
    metadata = schedule["metadata"]
    template = schedule["spec"]["jobTemplate"]
    template_metadata = template.get("metadata") or {}
    name = child_name(metadata["name"], scheduled_time)
    values = PlaceholderValues(scheduled_time=scheduled_time.astimezone(zone), job_name=name)

    labels = {k: render_text(v, values) for k, v in (template_metadata.get("labels") or {}).items()}
    labels[LABEL_SCHEDULE] = metadata["name"]
    annotations = {k: render_text(v, values) for k, v in (template_metadata.get("annotations") or {}).items()}
    annotations[ANNOTATION_SCHEDULED_TIME] = format_time(scheduled_time)

    spec = _render_spec(template["spec"], values)
    try:
        parse_spec(spec, path="spec.jobTemplate.spec")
    except SpecError as error:
        raise TemplateError(
            f"{error} (after expanding placeholders); fix the schedule's jobTemplate"
        ) from None

    return {
        "apiVersion": SCHEDULE_API_VERSION,
        "kind": "FineTuneJob",
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": SCHEDULE_API_VERSION,
                    "kind": SCHEDULE_KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
