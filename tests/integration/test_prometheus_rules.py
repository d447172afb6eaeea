"""Prometheus' own tools on what we ship: `promtool check metrics` on every exposition we serve,
`promtool check rules` and `promtool test rules` on the chart's alerting rules (the PrometheusRule
renders exactly the rule file that is tested)."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from finetune_operator.metrics import OperatorMetrics
from finetune_trainer.metrics_server import TrainerMetrics
from localcluster.binaries import ensure_binaries
from localcluster.config import load_config
from tests.plugins.helm import CHART_DIR, Helm, find

RULE_FILE = CHART_DIR / "rules" / "finetune-operator.rules.yaml"
RULE_TESTS = Path(__file__).resolve().parents[1] / "promtool" / "finetune-operator.rules.test.yaml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    config = load_config()
    ensure_binaries(config, only=("prometheus",))
    return config.prometheus_bin_dir / "promtool"


def run_promtool(promtool: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([str(promtool), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_operator_and_trainer_expositions_pass_promtool_check_metrics(promtool: Path) -> None:
    operator = OperatorMetrics()
    operator.set_job_conditions(("ml", "reviews"), ["Running"])
    operator.set_job_progress(
        ("ml", "reviews"),
        {"progress": {"step": 12, "totalSteps": 40, "trainLoss": 0.7}, "checkpoint": {"step": 10}},
    )
    operator.reconcile_duration.observe(0.02)
    operator_port = free_port()
    operator.serve(operator_port, "127.0.0.1")

    trainer = TrainerMetrics()
    trainer.step.set(12)
    trainer.eval_metric.labels("accuracy").set(0.8)
    trainer.checkpoint_upload_bytes.inc(1024)
    trainer.set_info({"torch": "2.x"}, task="sequence-classification", method="lora")
    trainer_port = trainer.serve(port=0, address="127.0.0.1")

    for port in (operator_port, trainer_port):
        text = fetch(port)
        assert "finetune_" in text
        run_promtool(promtool, "check", "metrics", stdin=text)


def test_rule_file_passes_check_and_its_unit_tests(promtool: Path, tmp_path: Path) -> None:
    assert "SUCCESS: 4 rules found" in run_promtool(promtool, "check", "rules", str(RULE_FILE))
    tests = tmp_path / "rules.test.yaml"
    tests.write_text(RULE_TESTS.read_text().replace("RULE_FILE", str(RULE_FILE)))
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", str(tests))


def test_chart_prometheusrule_carries_the_tested_rules(helm: Helm, promtool: Path, tmp_path: Path) -> None:
    assert find(helm.template(), "PrometheusRule") == []  # off by default
    objects = helm.template(
        {"metrics.prometheusRule.enabled": True, "metrics.prometheusRule.labels": {"r": "x"}}
    )
    (rule,) = find(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["r"] == "x"
    assert rule["spec"] == yaml.safe_load(RULE_FILE.read_text())
    rendered = tmp_path / "rendered.rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert alerts == {
        "FineTuneJobFailed",
        "FineTuneJobStalled",
        "FineTuneJobRestartsClimbing",
        "FineTuneOperatorDown",
    }
    run_promtool(promtool, "check", "rules", str(rendered))
