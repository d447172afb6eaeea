"""The FineTuneSchedule models: defaults as CronJob's, and refusals that name the field and the fix."""

import re

import pytest

from finetune_api.schedule import ScheduleSpecError, parse_schedule_spec
from finetune_api.schedule_timezones import time_zone_names

JOB_SPEC = {
    "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 3},
    "dataset": {"train": "s3://data/${scheduledDate}/train.jsonl"},
    "output": {"uri": "s3://models/${jobName}"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}


def spec(**fields) -> dict:
    return {"schedule": "0 2 * * *", "jobTemplate": {"spec": JOB_SPEC}, **fields}


def test_defaults_are_cronjobs():
    parsed = parse_schedule_spec(spec())
    assert parsed.time_zone == "UTC"
    assert parsed.concurrency_policy == "Allow"
    assert parsed.starting_deadline_seconds is None
    assert parsed.suspend is False
    assert (parsed.successful_jobs_history_limit, parsed.failed_jobs_history_limit) == (3, 1)
    assert parsed.job_template.spec.training.epochs == 3  # the job spec gets its own defaults


REFUSED = [
    (spec(schedule="61 * * * *"), "spec.schedule: must be a cron expression of five fields"),
    (spec(schedule="0 0 31 2 *"), "spec.schedule: day-of-month field: no listed month has day 31"),
    (spec(timeZone="Europe/Atlantis"), "spec.timeZone: must be an IANA time zone name"),
    (spec(timeZone="CET "), "spec.timeZone: must be an IANA time zone name"),
    (spec(concurrencyPolicy="Sometimes"), "spec.concurrencyPolicy: must be 'Allow', 'Forbid' or 'Replace'"),
    (spec(startingDeadlineSeconds=-1), "spec.startingDeadlineSeconds"),
    (spec(successfulJobsHistoryLimit=-1), "spec.successfulJobsHistoryLimit"),
    (spec(schedul="0 2 * * *"), "spec.schedul: unknown field"),
    ({"jobTemplate": {"spec": JOB_SPEC}}, "spec.schedule: required field is missing"),
    (
        spec(
            jobTemplate={
                "spec": {**JOB_SPEC, "model": {"uri": "s3://m", "task": "causal-lm", "numLabels": 2}}
            }
        ),
        "spec.jobTemplate.spec.model.numLabels: numLabels is refused when task is causal-lm",
    ),
    (
        spec(jobTemplate={"spec": {**JOB_SPEC, "dataset": {"train": "s3://data/${date}/x"}}}),
        "spec.jobTemplate.spec.dataset.train: ${date}: unknown or malformed placeholder",
    ),
    (
        spec(jobTemplate={"spec": {**JOB_SPEC, "dataset": {"train": "s3://d/x", "textField": "${jobName}"}}}),
        "spec.jobTemplate.spec.dataset.textField: placeholders are expanded only in model.uri",
    ),
    (
        spec(jobTemplate={"metadata": {"annotations": {"a": "${nope}"}}, "spec": JOB_SPEC}),
        "spec.jobTemplate.metadata.annotations.a: ${nope}: unknown or malformed placeholder",
    ),
]


@pytest.mark.parametrize(("data", "words"), REFUSED)
def test_refused_with_the_field_named(data, words):
    with pytest.raises(ScheduleSpecError, match=re.escape(words)) as error:
        parse_schedule_spec(data)
    assert str(error.value).startswith("invalid FineTuneSchedule: ")


def test_time_zones_known_and_sorted():
    names = time_zone_names()
    assert {"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"} <= set(names)
    assert list(names) == sorted(names)
