"""`make demo`: the whole loop on a fresh machine, narrated for a newcomer.

1. start (or reuse) the local cluster and S3 server, install the CRDs;
2. upload the pretrained MiniLM and a small labelled reviews dataset to S3;
3. start the operator and apply examples/quickstart.yaml (2 workers on the process node);
4. show live progress from the FineTuneJob's status (what `kubectl get ftj -w` shows, as a table);
5. once a checkpoint is committed, delete one worker pod as a preemption would;
6. show the next attempt resuming from that checkpoint (its step does not go back to 0);
7. end Succeeded, print the final metrics and where the model is, and stop what it started.

Every wait polls the API with a deadline; the demo fails with a clear message rather than hanging.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from rich.console import Console
from rich.live import Live
from rich.table import Table

from localcluster import cluster
from localcluster import s3 as s3_server
from localcluster.config import S3_DEFAULT_BUCKET, load_config
from localcluster.kubeconfig import parse_env
from localcluster.operator_process import OperatorProcess
from localcluster.quickstart import (
    REPO_ROOT,
    create_job,
    ensure_credentials,
    ensure_namespace,
    first_training_step,
    get_job,
    pod_log_lines,
    quickstart_manifest,
    resumed_from,
    seed_and_clear,
    worker_pods,
)

NAMESPACE = "finetune-demo"
JOB = "quickstart"
DEADLINE_SECONDS = 15 * 60
OPERATOR_ARGS = (
    "--progress-interval-seconds", "2", "--resync-seconds", "5", "--checkpoint-event-interval-seconds", "10",
    "--restart-backoff-max-seconds", "5", "--log-level", "INFO",
)  # fmt: skip
COLUMNS = (
    "phase",
    "attempt",
    "progress",
    "step",
    "train loss",
    "eval loss",
    "best",
    "ETA",
    "checkpoint",
    "restarts",
)
console = Console()


@dataclass
class Story:
    """What happened so far, for the narration and the final summary."""

    preempted_at_checkpoint: int | None = None
    preempted_pod: str | None = None
    resumed_step: int | None = None
    first_step_after_resume: int | None = None
    notes: list[str] = field(default_factory=list)


def status_table(body: dict[str, Any], story: Story) -> Table:
    status = body.get("status") or {}
    progress = status.get("progress") or {}
    restarts = status.get("restarts") or {}
    checkpoint = status.get("checkpoint") or {}
    percent = float(progress.get("percent") or 0.0)
    bar = "█" * int(percent / 10) + "░" * (10 - int(percent / 10))
    table = Table(title=f"FineTuneJob {NAMESPACE}/{JOB}  (kubectl get ftj -n {NAMESPACE} -w)", expand=True)
    for column in COLUMNS:
        table.add_column(column)
    table.add_row(
        str(status.get("phase") or "Pending"),
        str(status.get("attempt") or "-"),
        f"{bar} {percent:5.1f}%",
        f"{progress.get('step', '-')}/{progress.get('totalSteps', '-')}",
        _fmt(progress.get("trainLoss")),
        _fmt(progress.get("evalLoss")),
        _fmt(progress.get("bestMetric")),
        f"{progress['etaSeconds']}s" if progress.get("etaSeconds") is not None else "-",
        str(checkpoint.get("step") or "-"),
        f"{restarts.get('preemptions', 0)}P/{restarts.get('failures', 0)}F",
    )
    table.caption = "\n".join(story.notes[-4:])
    return table


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def status_line(body: dict[str, Any]) -> str:
    """One plain line of the same facts, for a log or a terminal without live redraw."""
    status = body.get("status") or {}
    progress = status.get("progress") or {}
    return (
        f"{status.get('phase') or 'Pending':10} attempt {status.get('attempt') or '-'}  "
        f"step {progress.get('step', '-')}/{progress.get('totalSteps', '-')} "
        f"({float(progress.get('percent') or 0):.0f}%)  loss {_fmt(progress.get('trainLoss'))}  "
        f"checkpoint {(status.get('checkpoint') or {}).get('step', '-')}  "
        f"restarts {(status.get('restarts') or {}).get('total', 0)}"
    )


def _finished(body: dict[str, Any]) -> str | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None


def watch(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, config: Any, story: Story
) -> dict[str, Any]:
    """Live table until the job finishes; preempts a worker once, then reports the resume."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    body: dict[str, Any] = {}
    last_line, notes_shown = "", 0
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while time.monotonic() < deadline:
            body = get_job(custom, NAMESPACE, JOB) or {}
            status = body.get("status") or {}
            checkpoint_step = (status.get("checkpoint") or {}).get("step")
            percent = float((status.get("progress") or {}).get("percent") or 0.0)
            if story.preempted_pod is None and checkpoint_step and percent < 80:
                preempt_one_worker(core, int(status.get("attempt") or 1), checkpoint_step, story)
            if story.preempted_pod is not None and story.resumed_step is None:
                look_for_resume(core, config, int(status.get("attempt") or 1), story)
            live.update(status_table(body, story))
            if not console.is_terminal:  # a log, not a screen: print what changed
                line = status_line(body)
                if line != last_line:
                    console.print(line)
                    last_line = line
                for note in story.notes[notes_shown:]:
                    console.print(note)
                notes_shown = len(story.notes)
            if _finished(body):
                return body
            time.sleep(0.5)  # refresh cadence of the display; every wait has the deadline above
    raise TimeoutError(f"the demo job did not finish within {DEADLINE_SECONDS}s; see .cluster/logs/")


def preempt_one_worker(core: client.CoreV1Api, attempt: int, checkpoint_step: int, story: Story) -> None:
    pods = [pod for pod in worker_pods(core, NAMESPACE, JOB, attempt) if pod.status.phase == "Running"]
    if len(pods) < 2:
        return
    victim = pods[-1]
    core.delete_namespaced_pod(victim.metadata.name, NAMESPACE)
    story.preempted_pod = victim.metadata.name
    story.preempted_at_checkpoint = checkpoint_step
    story.notes.append(
        f"⚡ deleted worker pod {victim.metadata.name} (as a preemption or node drain would) — "
        f"last committed checkpoint: step {checkpoint_step}"
    )


def look_for_resume(core: client.CoreV1Api, config: Any, attempt: int, story: Story) -> None:
    if attempt < 2:
        return
    pods = worker_pods(core, NAMESPACE, JOB, attempt)
    if not pods:
        return
    resumed = resumed_from(pod_log_lines(config, pods[0]))
    first = first_training_step(pod_log_lines(config, pods[0]))
    if resumed is not None and first is not None:
        story.resumed_step, story.first_step_after_resume = resumed, first
        how = (
            "the workers committed it on SIGTERM, within their grace period"
            if story.preempted_at_checkpoint is not None and resumed > story.preempted_at_checkpoint
            else "the last periodic checkpoint"
        )
        story.notes.append(
            f"↻ attempt {attempt} resumed from checkpoint step {resumed} ({how}); "
            f"its first logged training step is {first}, not 0"
        )


def final_report(body: dict[str, Any], fs: Any, story: Story) -> None:
    status = body.get("status") or {}
    output = (status.get("output") or {}).get("uri") or body["spec"]["output"]["uri"]
    console.rule(f"[bold]{_finished(body)}[/bold]")
    console.print(f"message: {status.get('message')}")
    metrics_path = output.removeprefix("s3://") + "/metrics.json"
    if fs.exists(metrics_path):
        metrics = json.loads(fs.cat_file(metrics_path))
        shown = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        console.print_json(json.dumps(shown))
    console.print(
        f"model: [bold]{output}[/bold]  (files: {', '.join(sorted(p.rsplit('/', 1)[-1] for p in fs.ls(output.removeprefix('s3://'))))})"
    )
    if story.resumed_step is not None:
        console.print(f"resume: attempt 2 continued from checkpoint step {story.resumed_step}")
    console.print(f"restarts: {status.get('restarts')}")


def install_crds(kubectl: str, env: dict[str, str]) -> None:
    """Server-side apply crds/ and wait until the FineTuneJob CRD is Established."""
    for args in (
        ["apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds")],
        ["wait", "--for=condition=Established", "--timeout=60s", "crd/finetunejobs.finetune.dev"],
    ):
        result = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args(argv)
    config = load_config()
    started_here = not cluster.is_live(config)
    began = time.monotonic()
    operator: OperatorProcess | None = None
    try:
        console.rule(
            "1. local cluster (etcd, kube-apiserver, controller-manager, scheduler, KWOK, process node, S3)"
        )
        cluster.up(config, owner="demo")
        env = {**os.environ, **parse_env(config.env_file.read_text(), os.environ.get("PATH", ""))}
        install_crds(str(config.kubectl), env)
        kube_config.load_kube_config(str(config.kubeconfig))
        core, custom = client.CoreV1Api(), client.CustomObjectsApi()

        console.rule("2. model and data into S3")
        endpoint = env["AWS_ENDPOINT_URL"]
        fs = s3_server.filesystem(endpoint)
        seeded = seed_and_clear(fs, S3_DEFAULT_BUCKET, JOB)
        console.print(seeded)

        console.rule("3. operator and examples/quickstart.yaml")
        ensure_namespace(core, NAMESPACE)
        ensure_credentials(core, NAMESPACE, endpoint)
        if get_job(custom, NAMESPACE, JOB) is not None:
            custom.delete_namespaced_custom_object("finetune.dev", "v1alpha1", NAMESPACE, "finetunejobs", JOB)
        log_path = config.log_dir / f"operator-{NAMESPACE}.log"
        operator = OperatorProcess(env, NAMESPACE, log_path, extra_args=OPERATOR_ARGS)
        operator.start()
        console.print(
            f"operator running (logs: {log_path}, metrics: http://127.0.0.1:{operator.metrics_port}/metrics)"
        )
        deadline = time.monotonic() + 60
        while get_job(custom, NAMESPACE, JOB) is not None and time.monotonic() < deadline:
            time.sleep(0.5)  # the previous demo job is being garbage-collected
        create_job(custom, NAMESPACE, quickstart_manifest(endpoint, S3_DEFAULT_BUCKET, JOB))

        console.rule("4-6. training, a preemption, the resume")
        story = Story()
        body = watch(custom, core, config, story)
        console.rule("7. result")
        final_report(body, fs, story)
        console.print(f"demo took {time.monotonic() - began:.0f}s")
        return 0 if _finished(body) == "Succeeded" else 1
    finally:
        if operator is not None:
            operator.stop()
        if started_here and not args.keep_cluster:
            cluster.down(config)


if __name__ == "__main__":
    sys.exit(main())
