"""Operator scale: N FineTuneJobs applied at once on 200 simulated 8-GPU nodes, against a floor.

Why side by side: the shared 2-core machine is noisy, so every size runs twice in one go: the floor
(the same N Indexed Jobs, built by the operator's own ``build_job``, applied directly with no
operator: what the control plane alone costs) and then the operator run. The headline is operator
time / floor time per phase. See docs/benchmarks.md for how to read it.

Per size: a fresh namespace per run (deleted afterwards); watches record, on this process's clock,
when each Job, pod and FineTuneJob reaches each milestone; once every pod runs, all are annotated
``localcluster.finetune.dev/succeed=true`` and KWOK completes them. Measured: apply -> every child
Job and pod created (per job p50/p99, and total), apply -> all pods Running, all pods Succeeded ->
every FineTuneJob Succeeded (floor: every Job Complete); the API requests the operator made (its own
FlowSchema's dispatched counter, see bench/cluster_session.py) per job; its peak RSS and CPU seconds.

Usage: python bench/operator_scale.py [--sizes 100,500,1000] [--nodes 200] [--keep-nodes]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import promtext, report, scale_metrics, scale_plan, stats
from bench.cluster_session import FLOW_SCHEMA, BenchCluster
from bench.control_plane_cpu import CpuMeter, spent
from bench.operator_process import OperatorProcess
from bench.watching import (
    MilestoneRecorder,
    finetunejob_milestones,
    job_milestones,
    pod_milestones,
)
from finetune_api.constants import GROUP, PLURAL, VERSION
from localcluster.waiting import wait_until

SUCCEED_ANNOTATION = "localcluster.finetune.dev/succeed"
CLIENT_THREADS = 8


def _floor_view(ftj: dict[str, Any], namespace: str) -> Any:
    """The FineTuneJob as the operator's builders see it, in the floor's namespace with a fresh uid."""
    from finetune_operator.job.jobview import JobView

    body = copy.deepcopy(ftj)
    body["metadata"] = {**body["metadata"], "namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1}
    return JobView.from_body(body)


def _unowned(child: dict[str, Any]) -> dict[str, Any]:
    child["metadata"].pop("ownerReferences", None)
    return child


def floor_job(ftj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The Indexed Job the operator would create for attempt 1, without the owner reference."""
    from finetune_operator.job.builders import build_job
    from finetune_operator.settings import parse_settings

    return _unowned(build_job(_floor_view(ftj, namespace), 1, parse_settings([], {})))


def floor_service(ftj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
    """The headless Service a gang's pods need for rank 0's DNS name (the operator's own), or None
    for a single worker (it has none either): what a user applies next to a bare Indexed Job."""
    from finetune_operator import naming
    from finetune_operator.job.builders import build_service

    if not naming.has_service(ftj["spec"]["resources"]["workers"]):
        return None
    return _unowned(build_service(_floor_view(ftj, namespace)))


def phase_timeout(pods: int) -> float:
    """A generous bound per phase: the run must end even when the control plane falls behind."""
    return 180 + 0.5 * pods


class Run:
    """One namespace, its watches, and the bulk operations of one measured run."""

    def __init__(self, cluster: BenchCluster, namespace: str, workers: dict[str, int]):
        self.cluster = cluster
        self.namespace = namespace
        self.workers = workers
        self.pods_expected = sum(workers.values())
        self.applied: dict[str, float] = {}
        self.pods = MilestoneRecorder(cluster.core.list_namespaced_pod, pod_milestones, namespace=namespace)
        self.jobs = MilestoneRecorder(cluster.batch.list_namespaced_job, job_milestones, namespace=namespace)
        self.cpu = CpuMeter(cluster.config.run_dir)
        self._cpu_at_apply: dict[str, float] = {}
        self.cpu_to_running: dict[str, float] = {}
        """CPU seconds per process from the first create until every pod ran (control_plane_cpu)."""

    def start(self) -> None:
        self.pods.start()
        self.jobs.start()

    def stop(self) -> None:
        self.pods.stop()
        self.jobs.stop()

    def apply(self, name_and_create: list[tuple[str, Any]]) -> float:
        """Create every object from a thread pool; record when each create call started."""
        self._cpu_at_apply = self.cpu.snapshot()
        started = time.monotonic()

        def create(item: tuple[str, Any]) -> None:
            name, call = item
            self.applied[name] = time.monotonic()
            call()

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(create, name_and_create))
        return time.monotonic() - started

    def wait_pods(self, milestone: str) -> None:
        wait_until(
            lambda: self.pods.count(milestone) >= self.pods_expected,
            phase_timeout(self.pods_expected),
            f"{self.pods_expected} pods {milestone} in {self.namespace}",
            poll=0.2,
        )

    def wait_running(self) -> None:
        """Until every pod runs; records the CPU each process spent since the apply began."""
        self.wait_pods("running")
        self.cpu_to_running = spent(self._cpu_at_apply, self.cpu.snapshot())

    def succeed_all_pods(self) -> float:
        """Annotate every pod so KWOK completes it; return the seconds the patches took."""
        core = self.cluster.core
        names = [pod.metadata.name for pod in core.list_namespaced_pod(self.namespace).items]
        body = {"metadata": {"annotations": {SUCCEED_ANNOTATION: "true"}}}
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(lambda name: core.patch_namespaced_pod(name, self.namespace, body), names))
        return time.monotonic() - started

    def phases(self, done: dict[str, float]) -> dict[str, Any]:
        return {"cpuSecondsApplyToRunning": self.cpu_to_running} | scale_metrics.scale_phases(
            self.applied,
            self.workers,
            self.jobs.times("created"),
            self.pods.times("created"),
            self.pods.times("running"),
            self.pods.times("succeeded"),
            done,
        )


def run_floor(
    cluster: BenchCluster,
    manifests: list[dict[str, Any]],
    workers: dict[str, int],
    size: int,
    services: bool = False,
):
    """The floor: the same Indexed Jobs applied directly. With `services`, each gang's headless
    Service goes first (as `kubectl apply` of a file holding both would): the bare path that gives
    rank 0 a DNS name, and that pays the control plane's cost of Services with selectors."""
    namespace = f"bench-floor{'svc' if services else ''}-{size}-{uuid.uuid4().hex[:5]}"
    cluster.create_namespace(namespace)
    run = Run(cluster, namespace, workers)
    try:
        run.start()
        jobs = [floor_job(m, namespace) for m in manifests]
        gang_services = [floor_service(m, namespace) if services else None for m in manifests]
        batch, core = cluster.batch, cluster.core

        def apply_one(job: dict[str, Any], service: dict[str, Any] | None) -> None:
            if service is not None:
                core.create_namespaced_service(namespace, service)
            batch.create_namespaced_job(namespace, job)

        calls = [
            (m["metadata"]["name"], lambda job=job, service=service: apply_one(job, service))
            for m, job, service in zip(manifests, jobs, gang_services, strict=True)
        ]
        what = "Indexed Jobs and their gangs' Services" if services else "Indexed Jobs"
        report.progress(f"floor N={size}: applying {len(jobs)} {what} ({run.pods_expected} pods)")
        apply_seconds = run.apply(calls)
        run.wait_pods("created")
        run.wait_running()
        report.progress(f"floor N={size}: all pods running; completing them through KWOK")
        succeed_seconds = run.succeed_all_pods()
        run.wait_pods("succeeded")
        wait_until(
            lambda: run.jobs.count("complete") >= len(jobs),
            phase_timeout(run.pods_expected),
            f"{len(jobs)} Jobs Complete in {namespace}",
            poll=0.2,
        )
        done = {scale_metrics.job_of(k): v for k, v in run.jobs.times("complete").items()}
        result = {"applySeconds": round(apply_seconds, 3), "annotateSeconds": round(succeed_seconds, 3)}
        result.update(run.phases(done))
        result["watchErrors"] = run.pods.errors + run.jobs.errors
        return result
    finally:
        run.stop()
        report.progress(f"floor N={size}: deleting namespace {namespace}")
        cluster.delete_namespace(namespace, wait=phase_timeout(run.pods_expected))


def run_operator(
    cluster: BenchCluster,
    manifests: list[dict[str, Any]],
    workers: dict[str, int],
    size: int,
    kubeconfig: Path,
):
    namespace = f"bench-op-{size}-{uuid.uuid4().hex[:5]}"
    cluster.create_namespace(namespace)
    run = Run(cluster, namespace, workers)
    operator = OperatorProcess(
        cluster.env(), namespace, kubeconfig, cluster.config.log_dir / f"operator-{namespace}.log"
    )
    ftjs = MilestoneRecorder(
        cluster.custom.list_namespaced_custom_object,
        finetunejob_milestones,
        group=GROUP,
        version=VERSION,
        namespace=namespace,
        plural=PLURAL,
    )
    try:
        operator.start()
        run.cpu.add("operator", operator.cpu_seconds)
        run.start()
        ftjs.start()
        requests_before = cluster.request_counts()
        cpu_before = operator.cpu_seconds()
        custom = cluster.custom
        calls = [
            (
                m["metadata"]["name"],
                lambda m=m: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, m),
            )
            for m in manifests
        ]
        report.progress(
            f"operator N={size}: applying {len(manifests)} FineTuneJobs ({run.pods_expected} pods)"
        )
        apply_seconds = run.apply(calls)
        run.wait_pods("created")
        run.wait_running()
        report.progress(f"operator N={size}: all pods running; completing them through KWOK")
        succeed_seconds = run.succeed_all_pods()
        run.wait_pods("succeeded")
        wait_until(
            lambda: ftjs.count("succeeded") >= len(manifests),
            phase_timeout(run.pods_expected),
            f"{len(manifests)} FineTuneJobs Succeeded in {namespace}",
            hint=f"see {operator.log_path}",
            poll=0.2,
        )
        cpu_seconds = operator.cpu_seconds() - cpu_before
        reconciles = reconcile_stats(operator.metrics_text(), size)
        requests_after = cluster.request_counts()
        operator_requests = requests_after.get(FLOW_SCHEMA, 0) - requests_before.get(FLOW_SCHEMA, 0)
        result = {"applySeconds": round(apply_seconds, 3), "annotateSeconds": round(succeed_seconds, 3)}
        result.update(run.phases(ftjs.times("succeeded")))
        result["operator"] = {
            "apiRequests": int(operator_requests),
            "apiRequestsPerJob": round(operator_requests / size, 2),
            "apiserverRequestsAllClients": int(requests_after["_all"] - requests_before["_all"]),
            "peakRssMiB": round(operator.peak_rss_bytes() / 2**20, 1),
            "cpuSeconds": round(cpu_seconds, 2),
            "cpuSecondsPerJob": round(cpu_seconds / size, 4),
            **reconciles,
        }
        result["watchErrors"] = run.pods.errors + run.jobs.errors + ftjs.errors
        return result
    finally:
        ftjs.stop()
        run.stop()
        operator.stop()
        report.progress(f"operator N={size}: deleting namespace {namespace}")
        cluster.delete_namespace(namespace, wait=phase_timeout(run.pods_expected))


def reconcile_stats(metrics_text: str, jobs: int) -> dict[str, Any]:
    """Reconcile passes by result, per job, and their mean duration, from the operator's /metrics."""
    samples = promtext.parse(
        metrics_text,
        (
            "finetune_operator_reconcile_total",
            "finetune_operator_reconcile_duration_seconds_sum",
            "finetune_operator_reconcile_duration_seconds_count",
            "finetune_operator_reconcile_triggers_total",
            "finetune_operator_api_requests_total",
            "finetune_operator_status_writes_total",
        ),
    )
    requests: dict[str, float] = {}
    for sample in samples:
        if sample.name == "finetune_operator_api_requests_total" and sample.value:
            label = f"{sample.labels.get('verb')} {sample.labels.get('resource')}"
            requests[label] = round(sample.value / jobs, 2)
    passes = promtext.total(samples, "finetune_operator_reconcile_total")
    count = promtext.total(samples, "finetune_operator_reconcile_duration_seconds_count")
    seconds = promtext.total(samples, "finetune_operator_reconcile_duration_seconds_sum")
    return {
        "reconcilePasses": promtext.by_label(samples, "finetune_operator_reconcile_total", "result"),
        "reconcilePassesPerJob": round(passes / jobs, 2),
        "reconcileMeanSeconds": round(seconds / count, 4) if count else None,
        "passTriggersPerJob": {
            trigger: round(value / jobs, 2)
            for trigger, value in promtext.by_label(
                samples, "finetune_operator_reconcile_triggers_total", "trigger"
            ).items()
        },
        "clientRequestsPerJob": dict(sorted(requests.items(), key=lambda item: -item[1])),
        "statusWritesPerJob": {
            result: round(value / jobs, 2)
            for result, value in promtext.by_label(
                samples, "finetune_operator_status_writes_total", "result"
            ).items()
        },
    }


def headline(floor: dict[str, Any], operator: dict[str, Any]) -> dict[str, Any]:
    """Operator / floor for each phase's total and per-job p50 and p99."""
    ratios: dict[str, Any] = {}
    for phase in ("applyToChildrenCreated", "applyToPodsRunning", "podsSucceededToDone"):
        ratios[phase] = {
            "total": stats.ratio(operator[phase]["totalSeconds"], floor[phase]["totalSeconds"]),
            "p50": stats.ratio(operator[phase]["perJobSeconds"]["p50"], floor[phase]["perJobSeconds"]["p50"]),
            "p99": stats.ratio(operator[phase]["perJobSeconds"]["p99"], floor[phase]["perJobSeconds"]["p99"]),
        }
    return ratios


def run_size(cluster: BenchCluster, size: int, nodes: int, kubeconfig: Path) -> dict[str, Any]:
    shapes = scale_plan.job_mix(size, nodes)
    names = scale_plan.job_names("ftj", size)
    manifests = [scale_plan.finetunejob(name, shape) for name, shape in zip(names, shapes, strict=True)]
    workers = {name: shape.workers for name, shape in zip(names, shapes, strict=True)}
    started = time.monotonic()
    floor = run_floor(cluster, manifests, workers, size)
    operator = run_operator(cluster, manifests, workers, size, kubeconfig)
    return {
        "jobs": size,
        "mix": scale_plan.mix_summary(shapes),
        "floor": floor,
        "operator": operator,
        "ratioOperatorOverFloor": headline(floor, operator),
        "wallSeconds": round(time.monotonic() - started, 1),
    }


def summary_table(result: dict[str, Any]) -> str:
    rows = []
    finished = [size for size in result["sizes"] if "error" not in size]
    for size in finished:
        for phase, label in (
            ("applyToChildrenCreated", "apply -> Job+pods created"),
            ("applyToPodsRunning", "apply -> pods Running"),
            ("podsSucceededToDone", "pods Succeeded -> done"),
        ):
            op, fl = size["operator"][phase], size["floor"][phase]
            rows.append(
                [
                    size["jobs"], label,
                    op["perJobSeconds"]["p50"], op["perJobSeconds"]["p99"], op["totalSeconds"],
                    fl["perJobSeconds"]["p50"], fl["perJobSeconds"]["p99"], fl["totalSeconds"],
                    size["ratioOperatorOverFloor"][phase]["total"],
                ]
            )  # fmt: skip
    header = ["N", "phase", "op p50 s", "op p99 s", "op total s", "floor p50", "floor p99", "floor total",
              "total ratio"]  # fmt: skip
    resources = [
        [s["jobs"], s["operator"]["operator"]["apiRequestsPerJob"], s["operator"]["operator"]["peakRssMiB"],
         s["operator"]["operator"]["cpuSeconds"]]
        for s in finished
    ]  # fmt: skip
    return (
        report.table(header, rows)
        + "\n\n"
        + report.table(["N", "API requests/job", "peak RSS MiB", "CPU s"], resources)
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated N (default 100,500,1000)")
    parser.add_argument("--nodes", type=int, default=200, help="simulated 8-GPU nodes (default 200)")
    parser.add_argument("--keep-nodes", action="store_true", help="leave the bench nodes for the next run")
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    started = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)
    with BenchCluster() as cluster:
        cluster.install_crds()
        report.progress(f"creating {args.nodes} bench nodes")
        node_started = time.monotonic()
        cluster.create_bench_nodes(args.nodes)
        nodes_seconds = time.monotonic() - node_started
        kubeconfig = cluster.operator_kubeconfig(cluster.config.state_dir / "bench" / "operator.kubeconfig")
        results = []
        try:
            for size in sizes:
                try:
                    results.append(run_size(cluster, size, args.nodes, kubeconfig))
                except Exception as error:  # keep the sizes that finished; larger ones would fail too
                    report.progress(f"N={size} FAILED: {error}; skipping the sizes after it")
                    results.append({"jobs": size, "error": str(error)[:2000]})
                    break
                report.progress(f"N={size} done: {json.dumps(results[-1]['ratioOperatorOverFloor'])}")
        finally:
            cluster.delete_operator_identity()
            if not args.keep_nodes:
                cluster.delete_bench_nodes()
    result = {
        "benchmark": "operator_scale",
        "nodes": {"count": args.nodes, "gpusPerNode": 8, "createSeconds": round(nodes_seconds, 1)},
        "sizes": results,
        "loadAverage1mAtStart": load_at_start,
        "wallSeconds": round(time.monotonic() - started, 1),
    }
    return result


if __name__ == "__main__":
    outcome = main()
    report.emit("operator_scale", outcome, summary_table(outcome))
