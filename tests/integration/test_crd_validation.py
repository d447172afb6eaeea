"""The real API server validates FineTuneJobs with the generated CRD as the models do.

Every example is accepted by a server-side dry run; every manifest of the invalid table
(tests/unit/test_api_invalid.py) is refused with the offending field's path in the message; and
`kubectl explain` teaches the API from the CRD's descriptions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finetune_api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from localcluster.waiting import wait_until
from tests.unit.test_api_invalid import INVALID_CASES, VALID_SPEC, invalid_spec

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def validation_namespace(core_v1: client.CoreV1Api, crds_installed: list[str]) -> Iterator[str]:
    """One namespace for all dry runs of this module (dry runs create nothing, so they can share it)."""
    name = f"t-crd-validation-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"finetune.dev/test": "true"}}})
    yield name
    core_v1.delete_namespace(name, propagation_policy="Background")


def dry_run_create(api_client: client.ApiClient, namespace: str, spec: dict[str, Any]) -> str | None:
    """Dry-run create a FineTuneJob (strict field validation); the refusal message, or None."""
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "dry-run"}, "spec": spec}
    try:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, dry_run="All", field_validation="Strict"
        )
    except client.ApiException as error:
        assert error.status in (400, 422), error.body
        return json.loads(error.body)["message"]
    return None


def test_the_base_spec_is_accepted(api_client: client.ApiClient, validation_namespace: str) -> None:
    assert dry_run_create(api_client, validation_namespace, VALID_SPEC) is None


@pytest.mark.parametrize(
    ("changes", "field_path"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_the_api_server_refuses_naming_the_field(
    api_client: client.ApiClient, validation_namespace: str, changes: dict[str, Any], field_path: str
) -> None:
    message = dry_run_create(api_client, validation_namespace, invalid_spec(changes))
    assert message is not None, "the API server accepted an invalid FineTuneJob"
    assert field_path in message, message


def test_a_changed_scheme_is_refused_with_the_accepted_ones_listed(
    api_client: client.ApiClient, validation_namespace: str
) -> None:
    message = dry_run_create(
        api_client, validation_namespace, invalid_spec({"output.uri": "https://host/out"})
    )
    assert message is not None
    for scheme in ("s3://", "gs://", "az://", "file://", "pvc://", "hf://"):
        assert scheme in message


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_is_accepted_by_a_server_side_dry_run(
    kubectl, validation_namespace: str, path: Path
) -> None:
    result = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        validation_namespace,
        "-f",
        str(path),
    )
    assert "serverside-applied (server dry run)" in result.stdout


def test_a_typo_is_refused_by_kubectl_apply(kubectl, validation_namespace: str) -> None:
    manifest = json.dumps(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "typo"},
            "spec": invalid_spec({"training": {"learningRat": 0.1}}),
        }
    )
    result = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        validation_namespace,
        "-f",
        "-",
        input=manifest,
        check=False,
    )
    assert result.returncode != 0
    assert "spec.training.learningRat" in result.stderr


def test_kubectl_explain_teaches_the_training_section(kubectl, crds_installed: list[str]) -> None:
    def explained() -> str | None:
        # The CRD's schema reaches the published OpenAPI shortly after it is Established.
        result = kubectl("explain", "finetunejob.spec.training", check=False)
        return result.stdout if result.returncode == 0 and "learningRate" in result.stdout else None

    text = wait_until(
        explained, 60, "kubectl explain finetunejob.spec.training to show the CRD fields", poll=0.5
    )
    assert "Optimisation hyperparameters" in text
    assert "Peak learning rate of the body" in text
    assert "gradientAccumulationSteps" in text and "Micro-batches summed" in text
