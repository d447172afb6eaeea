"""The generated CRD and API page: no drift from the models, and the shape kubectl users rely on."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from finetune_api import CRD_NAME, FineTuneJobSpec
from finetune_api.generate import main, outputs
from finetune_api.job_crd import finetunejob_crd
from finetune_api.spec_rules import SPEC_RULES

REPO_ROOT = Path(__file__).resolve().parents[2]


def _version() -> dict[str, Any]:
    return finetunejob_crd()["spec"]["versions"][0]


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


def test_regenerating_changes_nothing() -> None:
    for path, content in outputs(REPO_ROOT).items():
        assert path.read_text() == content, (
            f"{path.relative_to(REPO_ROOT)} is stale; run `make crds` and commit"
        )


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "docs" / "api.md").write_text("edited by hand\n")
    assert main(["--root", str(tmp_path), "--check"]) == 1


def test_the_committed_yaml_is_the_crd() -> None:
    committed = yaml.safe_load((REPO_ROOT / "crds" / "finetunejob.yaml").read_text())
    assert committed == finetunejob_crd()
    assert committed["metadata"]["name"] == CRD_NAME


def test_names_columns_and_status_subresource() -> None:
    crd = finetunejob_crd()["spec"]
    assert crd["names"]["shortNames"] == ["ftj"]
    assert crd["names"]["categories"] == ["finetune"]
    version = _version()
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Progress": ".status.progress.percent",
        "Step": ".status.progress.step",
        "Loss": ".status.progress.trainLoss",
        "Restarts": ".status.restarts.total",
        "Age": ".metadata.creationTimestamp",
    }


def test_the_schema_is_structural_and_documented() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema["properties"]["spec"], "spec"):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert node.get("description") or path.endswith(("[*]", ".*")), f"{path} has no description"


def test_every_string_and_list_is_bounded_for_the_cel_cost_budget() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec, "spec"):
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path} needs max_length"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} needs max_length"


def test_every_rule_points_at_a_field_of_the_spec() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    known = {path for path, _ in _walk(spec)}
    for rule in spec["x-kubernetes-validations"]:
        assert rule["fieldPath"] in known, rule
    assert len(SPEC_RULES) >= 15


def test_immutability_rules_cover_the_spec_except_lifecycle_knobs() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    transition = [r for r in spec["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    guarded = {r["fieldPath"] for r in transition}
    assert {
        f".{FineTuneJobSpec.model_fields[n].alias}" for n in ("model", "dataset", "training", "image")
    } <= guarded
    assert not guarded & {
        ".runPolicy.suspend",
        ".runPolicy.activeDeadlineSeconds",
        ".runPolicy.ttlSecondsAfterFinished",
    }
    assert all("is immutable" in r["message"] for r in transition)


def test_defaults_reach_nested_sections() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["training"]["default"] == {}
    assert spec["training"]["properties"]["evaluation"]["default"] == {}
    assert spec["training"]["properties"]["learningRate"]["default"] == 2e-5
    assert "default" not in spec["model"]


def test_the_api_page_lists_every_field() -> None:
    page = (REPO_ROOT / "docs" / "api.md").read_text()
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, _ in _walk(spec, "spec"):
        documented_as = path.replace("[*]", "[]")
        if path != "spec" and not path.endswith(("[*]", ".*")):
            assert f"`{documented_as}`" in page, path
