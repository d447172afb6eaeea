"""The real API server refuses every manifest of the invalid-sweep table naming the field, and the
sweep example is accepted by a server-side dry run (tests/integration/test_crd_validation.py applies
every example too).

A few rules have no CEL twin because CEL cannot see the field (a categorical parameter's `values`:
its items are untyped, so the API server leaves the list out of CEL's view). Those manifests are
accepted at apply, and the sweep controller refuses them: the sweep ends Failed (InvalidSpec) with
the same message naming the field.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from finetune_api import API_VERSION, GROUP, VERSION
from finetune_api.sweep import SWEEP_PLURAL
from localcluster.operator_process import OperatorProcess
from localcluster.waiting import wait_until
from tests.unit.test_sweep_models import INVALID_SWEEP_CASES, VALID_SWEEP, invalid_sweep

pytestmark = pytest.mark.cluster

CONTROLLER_ONLY = {"categorical-without-values"}
"""Table cases whose rule has no CEL twin (api/finetune_api/sweep.py, PARAMETER_RULES)."""
APPLY_CASES = [case for case in INVALID_SWEEP_CASES if case[0] not in CONTROLLER_ONLY]
CONTROLLER_CASES = [case for case in INVALID_SWEEP_CASES if case[0] in CONTROLLER_ONLY]


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


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in APPLY_CASES], ids=[c[0] for c in APPLY_CASES])
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


def test_the_sweep_controller_refuses_what_cel_cannot_check(
    cluster, api_client, namespace, crds_installed
) -> None:
    log = cluster.config.log_dir / f"operator-{namespace}.log"
    operator = OperatorProcess(cluster.env(), namespace, log, extra_args=("--standalone",))
    operator.start()
    custom = client.CustomObjectsApi(api_client)
    try:
        for name, changes, field in CONTROLLER_CASES:
            assert dry_run_create(api_client, namespace, invalid_sweep(changes)) is None, name
            body = {
                "apiVersion": API_VERSION,
                "kind": "FineTuneSweep",
                "metadata": {"name": name},
                "spec": invalid_sweep(changes),
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, SWEEP_PLURAL, body)

            def failed(sweep_name: str = name) -> dict[str, Any] | None:
                sweep = custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, SWEEP_PLURAL, sweep_name
                )
                status = sweep.get("status") or {}
                return status if status.get("phase") == "Failed" else None

            status = wait_until(failed, 60, f"sweep {name} refused by the controller")
            condition = next(c for c in status["conditions"] if c["type"] == "Failed")
            assert condition["reason"] == "InvalidSpec" and field in condition["message"], condition
    finally:
        operator.stop()
