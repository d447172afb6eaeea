"""Stored FineTuneJobs: the API server fills in the models' defaults and keeps the spec immutable.

Jobs are created suspended so that an operator running against the same cluster starts no workers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from finetune_api import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_spec
from tests.unit.test_api_invalid import DELETE, VALID_SPEC, apply_changes

pytestmark = pytest.mark.cluster

SUSPENDED = {"runPolicy": {"suspend": True}}


def _api(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create_job(
    api_client: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
    return _api(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )


def patch_spec(
    api_client: client.ApiClient, namespace: str, name: str, changes: dict[str, Any]
) -> str | None:
    """Merge-patch the spec; the refusal message, or None when the API server accepted it."""
    try:
        _api(api_client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": changes}
        )
    except client.ApiException as error:
        assert error.status == 422, error.body
        return json.loads(error.body)["message"]
    return None


def test_the_api_server_fills_in_the_models_defaults(
    api_client: client.ApiClient, namespace: str, crds_installed: list[str]
) -> None:
    spec = apply_changes(VALID_SPEC, SUSPENDED)
    stored = create_job(api_client, namespace, "defaults", spec)["spec"]
    expected = parse_spec(spec).model_dump(by_alias=True, mode="json", exclude_none=True)
    assert stored == expected


def test_a_lora_job_gets_the_lora_defaults(
    api_client: client.ApiClient, namespace: str, crds_installed: list[str]
) -> None:
    spec = apply_changes(
        VALID_SPEC, {**SUSPENDED, "model.task": "causal-lm", "model.numLabels": DELETE, "model.lora": {}}
    )
    stored = create_job(api_client, namespace, "lora-defaults", spec)["spec"]
    assert stored == parse_spec(spec).model_dump(by_alias=True, mode="json", exclude_none=True)


@pytest.mark.parametrize(
    ("changes", "field_path"),
    [
        ({"training": {"learningRate": 0.5}}, "spec.training"),
        ({"model": {"numLabels": 4}}, "spec.model"),
        ({"resources": {"workers": 3}}, "spec.resources"),
        ({"output": {"uri": "s3://finetune/outputs/elsewhere"}}, "spec.output"),
        ({"image": "registry.example/other:1"}, "spec.image"),
        ({"runPolicy": {"maxRestarts": 9}}, "spec.runPolicy.maxRestarts"),
    ],
    ids=["training", "model", "resources", "output", "image-added", "max-restarts"],
)
def test_changing_an_immutable_field_is_refused(
    api_client: client.ApiClient,
    namespace: str,
    crds_installed: list[str],
    changes: dict[str, Any],
    field_path: str,
) -> None:
    create_job(api_client, namespace, "immutable", apply_changes(VALID_SPEC, SUSPENDED))
    message = patch_spec(api_client, namespace, "immutable", changes)
    assert message is not None, "the API server accepted a change of an immutable field"
    assert field_path in message and "is immutable" in message, message


def test_the_lifecycle_knobs_may_change(
    api_client: client.ApiClient, namespace: str, crds_installed: list[str]
) -> None:
    create_job(api_client, namespace, "mutable", apply_changes(VALID_SPEC, SUSPENDED))
    changes = {"runPolicy": {"suspend": False, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 60}}
    assert patch_spec(api_client, namespace, "mutable", changes) is None
    assert patch_spec(api_client, namespace, "mutable", {"runPolicy": {"suspend": True}}) is None
