"""Recovery on the process node: a worker pod deleted mid-training -> first step of the next attempt.

Why this split: a user loses GPU time between a pod's death and the next useful step; where it goes
decides what to optimise. With the operator running (its own process, as in the scale benchmark) a
2-worker FineTuneJob trains a tiny BERT for real on the process node (torchrun, gloo, checkpoints to
the local S3). Once a checkpoint is committed, worker 1's pod is deleted, and the phases are:

- detection: deletion -> the operator noticed (condition ``Restarting=True`` on the FineTuneJob, or
  the next attempt's Job if that came first);
- gang stop and relaunch: noticed -> the next attempt's Job created (the operator stops the rest of
  the gang, whose ranks commit a checkpoint on SIGTERM, before it starts the next attempt);
- new pods running: that Job created -> every pod of the attempt Running (process node);
- model load: pods Running -> rank 0 logged ``data loaded`` (process start and imports, model
  files from S3, tokenizer, data);
- checkpoint download: ``data loaded`` -> ``resuming`` (the model build, then download and
  verification of the newest committed checkpoint; the tiny model builds in well under a second);
- first step: ``resuming`` -> the attempt's first ``train log`` line (loggingSteps 1).

The trainer's times come from its JSON log lines (rank 0's container log under .cluster/logs/),
the pod and Job times from watches on this process's clock, converted to wall-clock time.
There is no floor run here: the floor of each phase is named in docs/benchmarks.md.

Usage: python bench/recovery.py [--repeats 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import tempfile
import time
import uuid
from typing import Any

from bench import report, stats, trainer_logs
from bench.cluster_session import BenchCluster
from bench.operator_process import OperatorProcess
from bench.watching import MilestoneRecorder, pod_milestones
from finetune_api.constants import GROUP, PLURAL, VERSION
from localcluster.waiting import wait_until

JOB = "recover"
WAIT = 300.0


def finetunejob(model_uri: str, data_uri: str, prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": JOB},
        "spec": {
            "image": "finetune-trainer:bench",
            "model": {"uri": model_uri, "task": "sequence-classification", "numLabels": 2},
            "dataset": {"train": data_uri, "maxLength": 16, "split": {"validation": 0.0, "test": 0.0}},
            "training": {
                "epochs": 1000,
                "maxSteps": 100000,
                "batchSizePerDevice": 8,
                "learningRate": 5e-3,
                "loggingSteps": 1,
                "evaluation": {"strategy": "no"},
            },
            "checkpoint": {"uri": f"{prefix}/ckpt", "everySteps": 20, "keep": 2},
            "output": {"uri": f"{prefix}/out"},
            "storage": {"secretRef": {"name": "s3-credentials"}},
            "resources": {
                "workers": 2,
                "gpusPerWorker": 0,
                "nodeSelector": {"finetune.dev/process-node": "true"},
                "tolerations": [
                    {"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}
                ],
            },
            "runPolicy": {"terminationGracePeriodSeconds": 30, "maxRestarts": 3},
        },
    }


def upload_inputs(fs: Any, prefix: str, work: Path) -> tuple[str, str]:
    """The tiny BERT and the data of the trainer tests, put on the local S3."""
    from finetune_testkit.trainer_helpers import sentiment_records, write_jsonl, write_tiny_bert

    model = write_tiny_bert(work / "model")
    data = write_jsonl(work / "train.jsonl", sentiment_records(2000, seed=1))
    fs.put(str(model), f"{prefix.removeprefix('s3://')}/model", recursive=True)
    fs.put(str(data), f"{prefix.removeprefix('s3://')}/train.jsonl")
    return f"{prefix}/model", f"{prefix}/train.jsonl"


def rank0_log(log_dir: Path, namespace: str, attempt: int) -> list[dict[str, Any]]:
    """Rank 0's trainer JSON lines of one attempt (its pod's container log on the process node)."""
    records = []
    for path in sorted(log_dir.glob(f"{namespace}_{JOB}-a{attempt}-0-*/*.log")):
        records += trainer_logs.json_lines(path.read_text(errors="replace"))
    return [r for r in records if int(r.get("rank", 0) or 0) == 0]


def committed(log_dir: Path, namespace: str) -> bool:
    return bool(trainer_logs.commits(rank0_log(log_dir, namespace, 1)))


def first_train_log_after(records: list[dict[str, Any]], message: str) -> dict[str, Any] | None:
    seen = False
    for record in records:
        seen = seen or record.get("msg") == message
        if seen and record.get("msg") == "train log":
            return record
    return None


def restarting(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """FineTuneJob milestone: condition Restarting=True."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Restarting" and condition.get("status") == "True":
            return [((obj.get("metadata") or {}).get("name"), "restarting")]
    return []


def phases_from(
    deleted: float,
    noticed: float | None,
    job_created: float,
    pods_running: float,
    records: list[dict[str, Any]],
) -> dict[str, float | None]:
    """Seconds of each phase (wall-clock inputs; see module docstring)."""
    loaded = trainer_logs.first_record(records, "data loaded")
    resuming = trainer_logs.first_record(records, "resuming")
    first_step = first_train_log_after(records, "resuming")
    at = {name: trainer_logs.timestamp(r["time"]) if r else None for name, r in
          (("loaded", loaded), ("resuming", resuming), ("step", first_step))}  # fmt: skip

    def span(start: float | None, end: float | None) -> float | None:
        return round(end - start, 3) if start is not None and end is not None else None

    noticed = min(noticed, job_created) if noticed is not None else job_created
    return {
        "detection": span(deleted, noticed),
        "gangStopAndRelaunch": span(noticed, job_created),
        "newPodsRunning": span(job_created, pods_running),
        "modelLoad": span(pods_running, at["loaded"]),
        "checkpointDownload": span(at["loaded"], at["resuming"]),
        "firstStep": span(at["resuming"], at["step"]),
        "total": span(deleted, at["step"]),
        "resumedFromStep": resuming.get("checkpoint_step") if resuming else None,
        "firstStepAfterResume": first_step.get("step") if first_step else None,
    }


def one_recovery(cluster: BenchCluster, kubeconfig: Path, work: Path) -> dict[str, Any]:
    namespace = f"bench-recovery-{uuid.uuid4().hex[:5]}"
    bucket = cluster.env().get("S3_BUCKET", "finetune")
    prefix = f"s3://{bucket}/bench/{namespace}"
    cluster.create_namespace(namespace)
    env = cluster.env()
    secret = {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    cluster.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s3-credentials"}, "stringData": secret}
    )
    operator = OperatorProcess(
        env, namespace, kubeconfig, cluster.config.log_dir / f"operator-{namespace}.log"
    )
    pods = MilestoneRecorder(cluster.core.list_namespaced_pod, pod_milestones, namespace=namespace)
    jobs = MilestoneRecorder(
        cluster.batch.list_namespaced_job, lambda o: [((o.get("metadata") or {}).get("name"), "created")],
        namespace=namespace,
    )  # fmt: skip
    ftjs = MilestoneRecorder(
        cluster.custom.list_namespaced_custom_object, restarting,
        group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL,
    )  # fmt: skip
    wall_offset = time.time() - time.monotonic()
    try:
        model_uri, data_uri = upload_inputs(cluster.s3(), prefix, work)
        operator.start()
        pods.start()
        jobs.start()
        ftjs.start()
        manifest = finetunejob(model_uri, data_uri, prefix)
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        report.progress(f"recovery: training on the process node in {namespace}; waiting for a commit")
        log_dir = cluster.config.log_dir
        wait_until(
            lambda: committed(log_dir, namespace), WAIT, "attempt 1's first committed checkpoint", poll=0.5
        )
        victim = next(
            pod.metadata.name
            for pod in cluster.core.list_namespaced_pod(
                namespace, label_selector="finetune.dev/attempt=1"
            ).items
            if pod.metadata.annotations.get("batch.kubernetes.io/job-completion-index") == "1"
        )
        deleted = time.time()
        cluster.core.delete_namespaced_pod(victim, namespace)
        report.progress(f"recovery: deleted {victim}; waiting for attempt 2's first step")
        attempt2 = f"{JOB}-a2"
        wait_until(
            lambda: first_train_log_after(rank0_log(log_dir, namespace, 2), "resuming"),
            WAIT,
            "attempt 2's first training step after resuming",
            hint=f"see {operator.log_path} and {log_dir}/{namespace}_{attempt2}-0-*",
            poll=0.5,
        )
        job_created = jobs.times("created")[attempt2] + wall_offset
        running = [at for key, at in pods.times("running").items() if key.startswith(f"{attempt2}/")]
        pods_running = max(running) + wall_offset
        noticed = ftjs.times("restarting").get(JOB)
        noticed = noticed + wall_offset if noticed is not None else None
        records = rank0_log(log_dir, namespace, 2)
        return {
            "namespace": namespace,
            **phases_from(deleted, noticed, job_created, pods_running, records),
        }
    finally:
        pods.stop()
        jobs.stop()
        ftjs.stop()
        operator.stop()
        report.progress(f"recovery: deleting namespace {namespace}")
        cluster.delete_namespace(namespace, wait=WAIT)
        with contextlib.suppress(FileNotFoundError):
            cluster.s3().rm(prefix.removeprefix("s3://"), recursive=True)


PHASES = (
    "detection",
    "gangStopAndRelaunch",
    "newPodsRunning",
    "modelLoad",
    "checkpointDownload",
    "firstStep",
    "total",
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="recoveries to measure (default 2)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    runs = []
    with BenchCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        cluster.install_crds()
        kubeconfig = cluster.operator_kubeconfig(cluster.config.state_dir / "bench" / "operator.kubeconfig")
        try:
            for repeat in range(args.repeats):
                runs.append(one_recovery(cluster, kubeconfig, Path(tmp) / str(repeat)))
                report.progress(f"recovery {repeat + 1}/{args.repeats}: {json.dumps(runs[-1])}")
        finally:
            cluster.delete_operator_identity()
    return {
        "benchmark": "recovery",
        "workers": 2,
        "runs": runs,
        "phaseSeconds": {
            phase: stats.summarize([r[phase] for r in runs if r[phase] is not None]) for phase in PHASES
        },
        "wallSeconds": round(time.monotonic() - started, 1),
    }


def summary_table(result: dict[str, Any]) -> str:
    rows = [
        [phase, result["phaseSeconds"][phase]["p50"], result["phaseSeconds"][phase]["max"]]
        for phase in PHASES
    ]
    return report.table(["phase", "p50 s", "max s"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("recovery", outcome, summary_table(outcome))
