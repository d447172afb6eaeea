"""The operator-scale benchmark run against Kubeflow's training-operator v1.9.4 too (issue 16).

Why a peer: a ratio against the bare Job path says what our operator costs; the same figures for the
operator users would otherwise pick say whether that cost is good. Per size, in one go on the same
cluster and nodes: the floor (plain Indexed Jobs, as in operator_scale.py), our operator (N
FineTuneJobs), and the peer (N PyTorchJobs of the same worker/GPU mix: one Master and workers-1
Workers, the same resources and placement). All three are timed by the same watches, and every
pod is completed by KWOK the same way. The peer runs with upstream's defaults (its Deployment
passes no flags) except `--enable-scheme=pytorchjob` (only that CRD is installed) and loopback
addresses; it gets its own ServiceAccount and FlowSchema, so its API requests are counted exactly
like ours; its RSS and CPU are sampled from outside like ours.

The peer's validating webhook is registered with rules that match no request: its certificate is
for `training-operator.<ns>.svc`, which the local cluster cannot route to, so the peer is measured
without webhook latency (in its favour). A build failure is a failed benchmark whose error is the
compiler's message.

Usage: python bench/peer_training_operator.py [--sizes 100,500,1000] [--nodes 200] [--no-ours]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import base64
import contextlib
import os
import subprocess
import threading
import time
import uuid
from typing import Any

import psutil
from kubernetes.client.rest import ApiException

from bench import report, scale_metrics, scale_plan
from bench.cluster_session import BenchCluster, _create_or_keep
from bench.growth import growth_exponents
from bench.operator_scale import Run, headline, phase_timeout, run_floor, run_operator
from bench.watching import MilestoneRecorder, condition_milestones, phase_milestones
from localcluster import binaries
from localcluster.operator_process import free_loopback_port
from localcluster.waiting import wait_until

PEER_SA = "bench-peer"
PEER_FLOW_SCHEMA = "finetune-bench-peer"
PEER_NAMESPACE = "bench-peer-system"
KUBEFLOW = ("kubeflow.org", "v1", "pytorchjobs")
WEBHOOK_CONFIGURATION = "validator.training-operator.kubeflow.org"
WEBHOOK_SECRET = "training-operator-webhook-cert"
JOB_LABEL = "training.kubeflow.org/job-name"


def pytorchjob(name: str, shape: scale_plan.JobShape) -> dict[str, Any]:
    """A PyTorchJob with the FineTuneJob's shape: one Master plus workers-1 Workers, same resources."""
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    if shape.gpus_per_worker:
        gpus = str(shape.gpus_per_worker)
        resources = {
            "requests": {**resources["requests"], scale_plan.GPU_RESOURCE: gpus},
            "limits": {scale_plan.GPU_RESOURCE: gpus},
        }

    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {"name": "pytorch", "image": "finetune-trainer:bench", "resources": resources}
                    ],
                    **scale_plan.bench_placement(),
                }
            },
        }

    specs = {"Master": replica(1)}
    if shape.workers > 1:
        specs["Worker"] = replica(shape.workers - 1)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": {"finetune.dev/bench": "peer"}},
        "spec": {"pytorchReplicaSpecs": specs},
    }


def peer_pod_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A PyTorchJob's pod keyed ``<job>/<type>-<index>``: created, running, succeeded."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    job = labels.get(JOB_LABEL)
    if not job:
        return []
    replica = (
        labels.get("training.kubeflow.org/replica-type"),
        labels.get("training.kubeflow.org/replica-index"),
    )
    return phase_milestones(f"{job}/{replica[0]}-{replica[1]}", obj)


def pytorchjob_milestones(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """A PyTorchJob: created, succeeded (condition Succeeded=True)."""
    return condition_milestones(obj, "Succeeded", "succeeded")


def crd_path() -> Path:
    cache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    module = f"{binaries.TRAINING_OPERATOR_MODULE}@{binaries.TRAINING_OPERATOR_VERSION}"
    return Path(cache) / module / "manifests" / "base" / "crds" / "kubeflow.org_pytorchjobs.yaml"


def install_peer(cluster: BenchCluster) -> None:
    """The PyTorchJob CRD, the peer's namespace, its (empty) webhook Secret and a webhook configuration
    for its certificate rotator to inject into (matching no request, see the module docstring)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_path()))
    cluster.wait_established("pytorchjobs.kubeflow.org")
    _create_or_keep(cluster.core.create_namespace, None, {"metadata": {"name": PEER_NAMESPACE}})
    _create_or_keep(
        cluster.core.create_namespaced_secret, PEER_NAMESPACE, {"metadata": {"name": WEBHOOK_SECRET}}
    )
    from kubernetes import client

    admission = client.AdmissionregistrationV1Api(cluster.api)
    _create_or_keep(
        admission.create_validating_webhook_configuration,
        None,
        {
            "metadata": {"name": WEBHOOK_CONFIGURATION},
            "webhooks": [
                {
                    "name": "validate.pytorchjob.kubeflow.org",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Ignore",
                    "clientConfig": {"url": "https://127.0.0.1:9/validate-kubeflow-org-v1-pytorchjob"},
                    "rules": [
                        {
                            "apiGroups": ["kubeflow.org"],
                            "apiVersions": ["v1"],
                            "operations": ["CONNECT"],
                            "resources": ["pytorchjobs"],
                        }
                    ],
                }
            ],
        },
    )


def uninstall_peer(cluster: BenchCluster) -> None:
    from kubernetes import client

    with contextlib.suppress(ApiException):
        client.AdmissionregistrationV1Api(cluster.api).delete_validating_webhook_configuration(
            WEBHOOK_CONFIGURATION
        )
    cluster.delete_namespace(PEER_NAMESPACE, wait=120)


CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
"""Where upstream's certificate rotator expects the webhook Secret mounted (fixed in its code)."""


def mount_webhook_certs(core: Any) -> None:
    """Do the kubelet's part: copy the Secret the peer's rotator fills into its cert directory.

    In a pod the Secret is a mounted volume; the rotator waits for the files to appear there before
    it lets the controllers start. Here nothing mounts it, so the benchmark writes them.
    """

    def filled() -> dict[str, str] | None:
        data = core.read_namespaced_secret(WEBHOOK_SECRET, PEER_NAMESPACE).data or {}
        return data if {"tls.crt", "tls.key"} <= set(data) else None

    data = wait_until(filled, 120, f"the peer's rotator to fill Secret {PEER_NAMESPACE}/{WEBHOOK_SECRET}")
    CERT_DIR.mkdir(parents=True, exist_ok=True)
    for name, value in data.items():
        path = CERT_DIR / name
        path.write_bytes(base64.b64decode(value))
        path.chmod(0o600)


class PeerProcess:
    """The training-operator binary, watching one namespace; RSS and CPU sampled like ours."""

    def __init__(self, binary: Path, env: dict[str, str], namespace: str, kubeconfig: Path, log_path: Path):
        self.metrics_port = free_loopback_port()
        self.command = [
            str(binary),
            "--enable-scheme=pytorchjob",
            f"--namespace={namespace}",
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{free_loopback_port()}",
            f"--webhook-server-port={free_loopback_port()}",
        ]
        self.env = {**env, "KUBECONFIG": str(kubeconfig), "MY_POD_NAMESPACE": PEER_NAMESPACE}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._peak = 0
        self._stop = threading.Event()

    def start(self, core: Any) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        threading.Thread(target=self._sample, daemon=True).start()

        def started() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"training-operator exited {self.process.returncode}; see {self.log_path}")
            return "Starting workers" in self.log_path.read_text(errors="replace")

        mount_webhook_certs(core)
        wait_until(
            started, 120, "training-operator's PyTorchJob controller to start", hint=f"see {self.log_path}"
        )

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(psutil.Error):
                self._peak = max(self._peak, psutil.Process(self.process.pid).memory_info().rss)  # type: ignore[union-attr]

    def cpu_seconds(self) -> float:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.process.pid).cpu_times()  # type: ignore[union-attr]
            return times.user + times.system
        return 0.0

    def peak_rss_bytes(self) -> int:
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def run_peer(
    cluster: BenchCluster, binary: Path, shapes: list[scale_plan.JobShape], names: list[str], kubeconfig: Path
) -> dict[str, Any]:
    size = len(names)
    namespace = f"bench-peer-{size}-{uuid.uuid4().hex[:5]}"
    cluster.create_namespace(namespace)
    workers = {name: shape.workers for name, shape in zip(names, shapes, strict=True)}
    run = Run(cluster, namespace, workers)
    run.pods = MilestoneRecorder(cluster.core.list_namespaced_pod, peer_pod_milestones, namespace=namespace)
    group, version, plural = KUBEFLOW
    jobs = MilestoneRecorder(
        cluster.custom.list_namespaced_custom_object,
        pytorchjob_milestones,
        group=group,
        version=version,
        namespace=namespace,
        plural=plural,
    )
    peer = PeerProcess(
        binary, cluster.env(), namespace, kubeconfig, cluster.config.log_dir / f"peer-{namespace}.log"
    )
    try:
        peer.start(cluster.core)
        run.cpu.add("operator", peer.cpu_seconds)
        run.start()
        jobs.start()
        requests_before = cluster.request_counts()
        cpu_before = peer.cpu_seconds()
        custom = cluster.custom
        manifests = [pytorchjob(name, shape) for name, shape in zip(names, shapes, strict=True)]
        calls = [
            (
                name,
                lambda m=manifest: custom.create_namespaced_custom_object(
                    group, version, namespace, plural, m
                ),
            )
            for name, manifest in zip(names, manifests, strict=True)
        ]
        report.progress(f"peer N={size}: applying {size} PyTorchJobs ({run.pods_expected} pods)")
        apply_seconds = run.apply(calls)
        run.wait_pods("created")
        run.wait_running()
        report.progress(f"peer N={size}: all pods running; completing them through KWOK")
        succeed_seconds = run.succeed_all_pods()
        run.wait_pods("succeeded")
        wait_until(
            lambda: jobs.count("succeeded") >= size,
            phase_timeout(run.pods_expected),
            f"{size} PyTorchJobs Succeeded in {namespace}",
            hint=f"see {peer.log_path}",
            poll=0.2,
        )
        cpu_seconds = peer.cpu_seconds() - cpu_before
        requests = cluster.request_counts().get(PEER_FLOW_SCHEMA, 0) - requests_before.get(
            PEER_FLOW_SCHEMA, 0
        )
        pods_created = run.pods.times("created")
        result: dict[str, Any] = {
            "applySeconds": round(apply_seconds, 3),
            "annotateSeconds": round(succeed_seconds, 3),
            "cpuSecondsApplyToRunning": run.cpu_to_running,
        }
        result.update(
            scale_metrics.scale_phases(
                run.applied,
                workers,
                pods_created,  # the peer's children are pods (and Services): no batch Job in between
                pods_created,
                run.pods.times("running"),
                run.pods.times("succeeded"),
                jobs.times("succeeded"),
            )
        )
        result["operator"] = {
            "apiRequests": int(requests),
            "apiRequestsPerJob": round(requests / size, 2),
            "peakRssMiB": round(peer.peak_rss_bytes() / 2**20, 1),
            "cpuSeconds": round(cpu_seconds, 2),
            "cpuSecondsPerJob": round(cpu_seconds / size, 4),
        }
        result["watchErrors"] = run.pods.errors + run.jobs.errors + jobs.errors
        return result
    finally:
        for recorder in (jobs, run.pods, run.jobs):
            with contextlib.suppress(RuntimeError):  # never started: the failure is reported above
                recorder.stop()
        peer.stop()
        report.progress(f"peer N={size}: deleting namespace {namespace}")
        cluster.delete_namespace(namespace, wait=phase_timeout(run.pods_expected))


def run_size(
    cluster: BenchCluster,
    binary: Path,
    size: int,
    nodes: int,
    kubeconfigs: dict[str, Path],
    ours: bool,
    peer: bool = True,
) -> dict[str, Any]:
    shapes = scale_plan.job_mix(size, nodes)
    names = scale_plan.job_names("job", size)
    manifests = [scale_plan.finetunejob(name, shape) for name, shape in zip(names, shapes, strict=True)]
    workers = {name: shape.workers for name, shape in zip(names, shapes, strict=True)}
    started = time.monotonic()
    result: dict[str, Any] = {"jobs": size, "mix": scale_plan.mix_summary(shapes)}
    result["floor"] = run_floor(cluster, manifests, workers, size)
    result["floorWithServices"] = run_floor(cluster, manifests, workers, size, services=True)
    if ours:
        result["ours"] = run_operator(cluster, manifests, workers, size, kubeconfigs["ours"])
        result["ratioOursOverFloor"] = headline(result["floor"], result["ours"])
        result["ratioOursOverFloorWithServices"] = headline(result["floorWithServices"], result["ours"])
    if peer:
        result["peer"] = run_peer(cluster, binary, shapes, names, kubeconfigs["peer"])
        result["ratioPeerOverFloor"] = headline(result["floor"], result["peer"])
        result["ratioPeerOverFloorWithServices"] = headline(result["floorWithServices"], result["peer"])
    result["wallSeconds"] = round(time.monotonic() - started, 1)
    return result


def summary_table(result: dict[str, Any]) -> str:
    header = ["N", "who", "apply→Running total/floor", "done p99/floor", "done total/floor", "API req/job",
              "peak RSS MiB", "CPU ms/job"]  # fmt: skip
    rows = []
    for size in result.get("sizes", []):
        if "error" in size:
            rows.append([size["jobs"], "error", size["error"][:80], "", "", "", "", ""])
            continue
        for who in ("ours", "peer"):
            if who not in size:
                continue
            ratio = size["ratioOursOverFloor" if who == "ours" else "ratioPeerOverFloor"]
            figures = size[who]["operator"]
            rows.append(
                [
                    size["jobs"], "finetune-operator" if who == "ours" else "training-operator",
                    ratio["applyToPodsRunning"]["total"], ratio["podsSucceededToDone"]["p99"],
                    ratio["podsSucceededToDone"]["total"], figures["apiRequestsPerJob"],
                    figures["peakRssMiB"],
                    round(figures["cpuSecondsPerJob"] * 1000, 1),
                ]
            )  # fmt: skip
    return report.table(header, rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated N (default 100,500,1000)")
    parser.add_argument("--nodes", type=int, default=200, help="simulated 8-GPU nodes (default 200)")
    parser.add_argument("--no-ours", action="store_true", help="only the floor and the peer")
    parser.add_argument("--keep-nodes", action="store_true", help="leave the bench nodes for the next run")
    parser.add_argument(
        "--peer-max-size",
        type=int,
        default=1000,
        help="run the peer only up to this N; larger sizes run the floor and ours (the peer's client "
        "QPS of 20 makes its N=2000 alone take ~20 minutes on 2 cores; default 1000)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    started = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)
    from localcluster.config import load_config

    step = binaries.training_operator_step(load_config())
    build_seconds = binaries.ensure_built(step)  # raises with the compiler's message on failure
    binary = step.out_dir / "training-operator"
    results: list[dict[str, Any]] = []
    with BenchCluster() as cluster:
        cluster.install_crds()
        install_peer(cluster)
        report.progress(f"creating {args.nodes} bench nodes")
        cluster.create_bench_nodes(args.nodes)
        state = cluster.config.state_dir / "bench"
        kubeconfigs = {
            "ours": cluster.operator_kubeconfig(state / "operator.kubeconfig"),
            "peer": cluster.operator_kubeconfig(state / "peer.kubeconfig", PEER_SA, PEER_FLOW_SCHEMA),
        }
        try:
            for size in sizes:
                try:
                    results.append(
                        run_size(
                            cluster,
                            binary,
                            size,
                            args.nodes,
                            kubeconfigs,
                            not args.no_ours,
                            size <= args.peer_max_size,
                        )
                    )
                except Exception as error:
                    report.progress(f"N={size} FAILED: {error}; skipping the sizes after it")
                    results.append({"jobs": size, "error": str(error)[:2000]})
                    break
        finally:
            cluster.delete_operator_identity()
            cluster.delete_operator_identity(PEER_SA, PEER_FLOW_SCHEMA)
            uninstall_peer(cluster)
            if not args.keep_nodes:
                cluster.delete_bench_nodes()
    return {
        "benchmark": "peer_training_operator",
        "peer": {
            "name": "kubeflow/training-operator",
            "version": binaries.TRAINING_OPERATOR_VERSION,
            "buildSeconds": build_seconds,
        },
        "nodes": {"count": args.nodes, "gpusPerNode": 8},
        "sizes": results,
        "exponents": growth_exponents(results),
        "loadAverage1mAtStart": load_at_start,
        "wallSeconds": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    try:
        outcome = main()
    except RuntimeError as error:  # e.g. the Go build failed: print the compiler's message
        report.progress(f"peer_training_operator FAILED: {error}")
        raise SystemExit(1) from None
    report.emit("peer_training_operator", outcome, summary_table(outcome))
