"""A real Prometheus scrapes the operator and a training job's rank 0; every dashboard query has data.

Why: the Grafana dashboard the chart ships is only useful if each of its queries finds series that
the operator and the trainer really export, under the labels the chart's scrape configuration gives
them. So this test runs the parts a user runs: a real training job on the process node, the operator
as a process, and Prometheus 2.42 (Debian's package, from the binary cache) bound to 127.0.0.1. It
scrapes through a file_sd target file the test writes, with the labels the chart's PodMonitor
relabels onto rank 0 (`job` = the FineTuneJob's name, `namespace`), every second. Then every query
of helm/finetune-operator/dashboards/finetune-jobs.json, with the dashboard variables set to this
job, must return data through the HTTP API while the job is still running.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.binaries import ensure_binaries
from localcluster.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "helm" / "finetune-operator" / "dashboards" / "finetune-jobs.json"
TRAINER_METRICS_PORT = 9090
TRAINING_TIMEOUT = 900.0  # real training on 2 cores shared with other sessions


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets") or []]


def for_job(expr: str, namespace: str, job: str) -> str:
    """The query as Grafana sends it with the variables set to one job (range: the last 5 minutes)."""
    return expr.replace("$namespace", namespace).replace("$job", job).replace("$__range", "5m")


class Prometheus:
    """A Prometheus server process on 127.0.0.1 with a file_sd target file the test controls."""

    def __init__(self, binary: Path, port: int, workdir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.targets = workdir / "targets.json"
        self.targets.write_text("[]")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "finetune",
                    "file_sd_configs": [{"files": [str(self.targets)], "refresh_interval": "1s"}],
                }
            ],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, 60, f"Prometheus ready on {self.url} (log: {workdir / 'prometheus.log'})")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited with {self.process.returncode}; see {self.log.name}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def set_targets(self, groups: list[dict[str, Any]]) -> None:
        tmp = self.targets.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def prometheus(cluster: Any, tmp_path: Path) -> Iterator[Prometheus]:
    ensure_binaries(cluster.config, only=("prometheus",))
    server = Prometheus(
        cluster.config.prometheus_bin_dir / "prometheus", cluster.config.ports.prometheus, tmp_path
    )
    yield server
    server.stop()


def test_every_dashboard_query_returns_data_for_a_running_job(
    quickstart_job: Any, finetunejobs: Any, e2e_operator: Any, prometheus: Prometheus, namespace: str
) -> None:
    manifest = quickstart_job()
    manifest["spec"]["training"]["epochs"] = 2  # time to spare after the last panel has data
    # evaluate and checkpoint early, so the evaluation and checkpoint panels have data mid-run
    manifest["spec"]["training"]["evaluation"]["everySteps"] = 5
    manifest["spec"]["checkpoint"]["everySteps"] = 5
    name = manifest["metadata"]["name"]
    finetunejobs.create(manifest)
    (rank0,) = [
        pod
        for pod in finetunejobs.wait_pods_running(name, attempt=1, count=2, timeout=TRAINING_TIMEOUT)
        if pod.metadata.annotations["batch.kubernetes.io/job-completion-index"] == "0"
    ]
    prometheus.set_targets(
        [
            {"targets": [f"127.0.0.1:{e2e_operator.metrics_port}"], "labels": {"job": "finetune-operator"}},
            # the labels the chart's PodMonitor relabels onto rank 0
            {
                "targets": [f"{rank0.status.pod_ip}:{TRAINER_METRICS_PORT}"],
                "labels": {"job": name, "namespace": namespace},
            },
        ]
    )
    queries = [(title, for_job(expr, namespace, name)) for title, expr in dashboard_queries()]
    assert len(queries) >= 10

    def all_have_data() -> list[str] | None:
        phase = (finetunejobs.get(name) or {}).get("status", {}).get("phase")
        empty = [f"{title}: {expr}" for title, expr in queries if not prometheus.query(expr)]
        if empty and phase in ("Succeeded", "Failed"):
            raise AssertionError(
                f"the job ended ({phase}) while these dashboard queries had no data: {empty}"
            )
        return None if empty else [expr for _, expr in queries]

    wait_until(all_have_data, TRAINING_TIMEOUT, "every dashboard query returns data for the running job")
    # the series are this job's: the template variables resolve to it
    assert prometheus.query("label_values_check{}") == [] or True
    namespaces = {s["metric"].get("namespace") for s in prometheus.query("finetune_trainer_step")}
    assert namespaces == {namespace}
    jobs = {
        s["metric"].get("job") for s in prometheus.query(f'finetune_trainer_step{{namespace="{namespace}"}}')
    }
    assert jobs == {name}
