"""The FineTuneSchedule part of docs/api.md, rendered from the same schema as its CRD.

The field tables reuse the FineTuneJob page's renderer; jobTemplate.spec is not expanded again (it is
a FineTuneJob spec, documented above it on the same page). The user guide is docs/schedules.md.
"""

from typing import Any

from finetune_api.docs import _section
from finetune_api.schedule import SCHEDULE_KIND, SCHEDULE_SHORT_NAMES
from finetune_api.schedule_crd import SCHEDULE_PRINTER_COLUMNS, finetuneschedule_schema

INTRO = f"""
# The FineTuneSchedule API (`finetune.dev/v1alpha1`)

A `{SCHEDULE_KIND}` (short name `{SCHEDULE_SHORT_NAMES[0]}`) creates a FineTuneJob from
`spec.jobTemplate` at the times of a cron schedule, with the semantics of a Kubernetes CronJob. How
schedules, time zones, missed runs and placeholders behave: [schedules.md](schedules.md).
`spec.jobTemplate.spec` is a whole FineTuneJob spec (the tables above).
"""


def _without_job_spec(spec: dict[str, Any]) -> dict[str, Any]:
    template = spec["properties"]["jobTemplate"]
    job_spec = template["properties"]["spec"]
    short = {k: v for k, v in job_spec.items() if k not in ("properties", "required")}
    properties = {**spec["properties"], "jobTemplate": {**template, "properties": {**template["properties"]}}}
    properties["jobTemplate"]["properties"]["spec"] = {**short, "type": "object"}
    return {**spec, "properties": properties}


def render_schedule_markdown() -> str:
    """The FineTuneSchedule section appended to docs/api.md."""
    schema = finetuneschedule_schema()
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    lines = [INTRO]
    lines += _section("FineTuneSchedule spec", _without_job_spec(spec), "spec")
    lines += _section("FineTuneSchedule status", status, "status")
    lines += ["## `kubectl get fts` columns", "", "| column | from |", "|---|---|"]
    lines += [f"| {c['name']} | `{c['jsonPath']}` |" for c in SCHEDULE_PRINTER_COLUMNS]
    return "\n".join(lines).rstrip("\n") + "\n"
