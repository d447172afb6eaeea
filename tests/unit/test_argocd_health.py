"""The Argo CD health check (deploy/argocd/health-finetunejob.lua) run by a real Lua interpreter.

Argo CD runs the script with the live object as the global `obj` (gopher-lua, Lua 5.1 semantics);
lupa embeds a real Lua, so the script is exercised as written, not re-implemented in Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lupa import LuaRuntime

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "health-finetunejob.lua"


def _to_lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) that the script answers for `obj`."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    result = lua.execute(SCRIPT.read_text())
    return result["status"], result["message"]


def job(phase: str | None, conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "reviews", "namespace": "ml", "generation": 1},
        "spec": {},
    }
    if phase is not None:
        body["status"] = {"phase": phase, "conditions": conditions or [], **status}
    return body


def condition(type_: str, message: str, status: str = "True") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": type_, "message": message}


@pytest.mark.parametrize(
    ("phase", "conditions", "expected_status", "expected_message"),
    [
        (
            "Succeeded",
            [condition("Succeeded", "model written to s3://m/out")],
            "Healthy",
            "model written to s3://m/out",
        ),
        ("Running", [condition("Running", "2/2 workers running")], "Progressing", "2/2 workers running"),
        ("Pending", [], "Progressing", "Pending"),
        (
            "Restarting",
            [condition("Restarting", "attempt 2 after preemption")],
            "Progressing",
            "attempt 2 after preemption",
        ),
        ("Suspended", [condition("Suspended", "suspended at step 40")], "Suspended", "suspended at step 40"),
        (
            "Failed",
            [condition("Failed", "exit 78: dataset.textField 'text' missing")],
            "Degraded",
            "exit 78: dataset.textField 'text' missing",
        ),
    ],
)
def test_phase_maps_to_argo_health_with_the_condition_message(
    phase: str, conditions: list[dict[str, Any]], expected_status: str, expected_message: str
) -> None:
    assert health(job(phase, conditions)) == (expected_status, expected_message)


def test_without_condition_messages_it_falls_back_to_a_sentence() -> None:
    assert health(job("Succeeded")) == ("Healthy", "Fine-tuning succeeded")
    assert health(job("Failed")) == ("Degraded", "Fine-tuning failed")
    assert health(job("Suspended"))[0] == "Suspended"


def test_running_without_condition_message_reports_progress() -> None:
    status, message = health(job("Running", progress={"step": 120, "totalSteps": 300, "percent": 40.0}))
    assert (status, message) == ("Progressing", "step 120/300 (40%)")


def test_a_stalled_running_job_is_degraded() -> None:
    conditions = [condition("Running", "running"), condition("Stalled", "no step for 900s")]
    assert health(job("Running", conditions)) == ("Degraded", "no step for 900s")


def test_a_job_the_operator_has_not_seen_is_progressing() -> None:
    assert health(job(None)) == ("Progressing", "Waiting for the operator to pick up the job")


def test_an_unobserved_generation_is_progressing() -> None:
    body = job("Succeeded", observedGeneration=1)
    body["metadata"]["generation"] = 2
    assert health(body) == ("Progressing", "Waiting for the operator to observe generation 2")


def test_an_unknown_phase_is_unknown() -> None:
    assert health(job("Exploded")) == ("Unknown", "Unknown phase Exploded")


def test_the_argocd_cm_snippet_embeds_the_script_unchanged() -> None:
    import yaml

    snippet = yaml.safe_load((SCRIPT.parent / "argocd-cm-patch.yaml").read_text())
    embedded = snippet["data"]["resource.customizations.health.finetune.dev_FineTuneJob"]
    assert embedded == SCRIPT.read_text(), (
        "regenerate deploy/argocd/argocd-cm-patch.yaml (see docs/gitops.md)"
    )
