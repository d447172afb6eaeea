"""A FineTuneSchedule with an invalid cron expression, time zone or placeholder is refused by the
real API server at apply time, with a message that names the field (CRD pattern and CEL rules)."""

import json
from typing import Any

import pytest
from kubernetes import client

from finetune_api.constants import GROUP, VERSION
from finetune_api.schedule import SCHEDULE_PLURAL

pytestmark = pytest.mark.cluster

JOB_SPEC = {
    "model": {"uri": "file:///models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "file:///data/${scheduledDate}/train.jsonl"},
    "output": {"uri": "file:///models/${jobName}"},
}


def manifest(name: str = "nightly", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": JOB_SPEC}, **spec},
    }


@pytest.fixture
def custom(api_client: client.ApiClient, crds_installed: list[str]) -> client.CustomObjectsApi:
    assert f"{SCHEDULE_PLURAL}.{GROUP}" in crds_installed
    return client.CustomObjectsApi(api_client)


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, SCHEDULE_PLURAL, body)


def test_valid_schedule_is_accepted_and_defaulted(custom, namespace):
    stored = create(custom, namespace, manifest(timeZone="Europe/Berlin"))
    spec = stored["spec"]
    assert spec["timeZone"] == "Europe/Berlin"
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert spec["jobTemplate"]["spec"]["training"]["epochs"] == 3
    assert "timeZone" in create(custom, namespace, manifest("defaults"))["spec"]


REFUSED = [
    ({"schedule": "61 * * * *"}, "spec.schedule"),
    ({"schedule": "not a cron"}, "spec.schedule"),
    ({"schedule": "* * * *"}, "spec.schedule"),
    ({"schedule": "5-1 * * * *"}, "a range starts after it ends"),
    ({"schedule": "@every 1h"}, "spec.schedule"),
    ({"timeZone": "Mars/Olympus_Mons"}, "must be an IANA time zone name"),
    ({"timeZone": "Europe/Berlin "}, "spec.timeZone"),
    ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
    (
        {"jobTemplate": {"spec": {**JOB_SPEC, "dataset": {"train": "file:///data/${date}/train.jsonl"}}}},
        "unknown or malformed placeholder",
    ),
    (
        {"jobTemplate": {"metadata": {"labels": {"day": "${scheduledDay}"}}, "spec": JOB_SPEC}},
        "unknown or malformed placeholder",
    ),
    (
        {
            "jobTemplate": {
                "spec": {**JOB_SPEC, "model": {"uri": "file:///m", "task": "sequence-classification"}}
            }
        },
        "numLabels is required",
    ),
]


@pytest.mark.parametrize(("spec", "words"), REFUSED)
def test_invalid_schedule_is_refused_at_apply(custom, namespace, spec, words):
    with pytest.raises(client.ApiException) as refused:
        create(custom, namespace, manifest(**spec))
    assert refused.value.status == 422
    assert words in refused.value.body


def test_too_long_name_is_refused(custom, namespace):
    with pytest.raises(client.ApiException) as refused:
        create(custom, namespace, manifest("n" * 41))
    assert refused.value.status == 422
    assert "metadata.name must be at most 40 characters" in refused.value.body


def test_kubectl_shows_the_refusal(kubectl, crds_installed, namespace):
    bad = manifest(schedule="0 25 * * *")
    result = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert "spec.schedule" in result.stderr
