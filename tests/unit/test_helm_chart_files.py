"""The chart's static files agree with the rest of the repository (no helm binary needed).

- helm/finetune-operator/crds/ is a byte-for-byte copy of crds/ (Helm can only install CRDs from
  inside the chart, the generator writes crds/).
- values.schema.json describes every key of values.yaml, and values.yaml satisfies it.
- The Grafana dashboard queries only series that exist: the trainer's contract metrics
  (docs/architecture.md) and the operator's finetune_operator_* metrics.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "finetune-operator"
SYNC_HINT = "run `cp crds/*.yaml helm/finetune-operator/crds/` after `make crds`"


def test_chart_crds_are_identical_to_generated_crds() -> None:
    generated = {path.name: path.read_bytes() for path in (REPO_ROOT / "crds").glob("*.yaml")}
    shipped = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert sorted(shipped) == sorted(generated), f"chart crds/ has other files than crds/; {SYNC_HINT}"
    for name, content in generated.items():
        assert shipped[name] == content, (
            f"helm/finetune-operator/crds/{name} differs from crds/{name}; {SYNC_HINT}"
        )


def test_chart_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert project is not None
    assert chart["appVersion"] == project.group(1), "bump Chart.yaml appVersion together with pyproject.toml"


def _schema_errors(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """The subset of JSON Schema the chart's schema uses: type, enum, properties, items, bounds."""
    errors: list[str] = []
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    expected = schema.get("type")
    if expected and (
        not isinstance(value, types[expected]) or (expected != "boolean" and isinstance(value, bool))
    ):
        return [f"{path}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += _schema_errors(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{key}: not described in values.schema.json")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _schema_errors(item, schema["additionalProperties"], f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def test_values_yaml_satisfies_values_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _schema_errors(values, schema, "values") == []


def test_every_schema_property_has_a_description() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for key, child in node.get("properties", {}).items():
            if "description" not in child:
                missing.append(f"{path}.{key}")
            walk(child, f"{path}.{key}")

    walk(schema, "values")
    assert missing == []


def _dashboard() -> dict[str, Any]:
    return json.loads((CHART / "dashboards" / "finetune-jobs.json").read_text())


def _queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [
        var["query"]["query"] for var in dashboard["templating"]["list"] if isinstance(var.get("query"), dict)
    ]
    return {name for expr in exprs for name in re.findall(r"\bfinetune_(?:trainer|operator)_[a-z_]+", expr)}


def _trainer_contract_metrics() -> set[str]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("**Metrics** (see") :]
    section = section[: section.index("\n\n")]
    return {f"finetune_trainer_{name}" for name in re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", section)}


def _operator_metric_names() -> set[str]:
    sources = (REPO_ROOT / "operator" / "finetune_operator").glob("*.py")
    return {name for path in sources for name in re.findall(r"finetune_operator_[a-z_]+", path.read_text())}


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    titles = {panel["title"] for panel in _dashboard()["panels"]}
    wanted = {
        "Jobs by phase",
        "Restarts by kind",
        "Progress",
        "Step rate",
        "Training loss",
        "Evaluation loss",
        "Evaluation metric",
        "Checkpoint age",
    }
    assert wanted <= titles


def test_dashboard_queries_only_trainer_contract_metrics() -> None:
    trainer = {name for name in _queried_metrics(_dashboard()) if name.startswith("finetune_trainer_")}
    unknown = trainer - _trainer_contract_metrics()
    assert unknown == set(), f"dashboard queries trainer series missing from docs/architecture.md: {unknown}"


def test_dashboard_queries_only_metrics_the_operator_exports() -> None:
    operator = {name for name in _queried_metrics(_dashboard()) if name.startswith("finetune_operator_")}
    exported = _operator_metric_names()
    if not exported:
        pytest.skip("operator/finetune_operator defines no finetune_operator_* metrics yet")
    # prometheus_client appends _total to counters; the source may declare either form.
    missing = {
        name for name in operator if name not in exported and name.removesuffix("_total") not in exported
    }
    assert missing == set(), (
        f"dashboard queries operator series that finetune_operator does not export: {missing}"
    )


def test_dashboard_has_unique_panel_ids_and_a_stable_uid() -> None:
    dashboard = _dashboard()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "finetune-jobs"
