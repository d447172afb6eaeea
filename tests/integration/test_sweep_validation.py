"""The real API server refuses every manifest of the invalid-sweep table naming the field, and the
sweep example is accepted by a server-side dry run (tests/integration/test_crd_validation.py applies
every example too)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from finetune_api import API_VERSION, GROUP, VERSION
from finetune_api.sweep import SWEEP_PLURAL
from tests.unit.test_sweep_models import INVALID_SWEEP_CASES, VALID_SWEEP, invalid_sweep

pytestmark = pytest.mark.cluster


def dry_run_create(
    api_client: client.ApiClient, namespace: str, spec: dict[str, Any], name: str = ""
) -> str | None:
    """None when the API server accepts the sweep (dry run), else its refusal message."""
    body = {
        "apiVersion": API_VERSION,
        "kind": "FineTuneSweep",
        "metadata": {"name": name or f"sweep-{uuid.uuid4().hex[:6]}"},
        "spec": spec,
    }
    try:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, SWEEP_PLURAL, body, dry_run="All"
        )
    except client.ApiException as error:
        return str(error.body)
    return None


def test_the_valid_sweep_is_accepted(api_client, namespace, crds_installed) -> None:
    assert dry_run_create(api_client, namespace, VALID_SWEEP) is None


def test_a_long_name_is_refused(api_client, namespace, crds_installed) -> None:
    refusal = dry_run_create(api_client, namespace, VALID_SWEEP, name="s" * 41)
    assert refusal is not None and "at most 40 characters" in refusal


@pytest.mark.parametrize(
    ("changes", "field"), [c[1:] for c in INVALID_SWEEP_CASES], ids=[c[0] for c in INVALID_SWEEP_CASES]
)
def test_the_api_server_refuses_naming_the_field(
    api_client, namespace, crds_installed, changes, field
) -> None:
    refusal = dry_run_create(api_client, namespace, invalid_sweep(changes))
    assert refusal is not None, f"accepted: {changes}"
    assert field in refusal, refusal


def test_an_unknown_path_is_named(api_client, namespace, crds_installed) -> None:
    refusal = dry_run_create(
        api_client, namespace, invalid_sweep({"parameters.0.name": "training.learningRat"})
    )
    assert refusal is not None and "'training.learningRat' is not a field of the FineTuneJob spec" in refusal
