"""`make faults`: a fixed, seeded fault campaign; prints JSON (docs/reliability.md has the figures).

Why a campaign and not only tests: each test pins one fault at one point; the campaign throws the
same faults at many seeded points of real runs and counts the outcomes that would hurt a user.
Targets: 0 corrupt checkpoints resumed, 0 resumed loss curves that differ from an uninterrupted
run, 0 samples seen twice in an epoch, 0 permanent failures from a transient fault.

Parts (the trainer is the real ``python -m finetune_trainer`` on a tiny BERT built from a config;
the store is a private SeaweedFS — hack/finetune_testkit/private_s3.py — that the campaign may stop):

- ``reference``: one uninterrupted run: per-step losses and the samples of every step.
- ``workerKills`` (``--kills``, default 10): a run SIGKILLed at a seeded random step, then started
  again on the same checkpoint prefix, as the operator's next attempt would be. The trajectory
  (for each step, what the last run that executed it logged) must equal the reference's losses
  (rel 1e-5) and samples; ``samplesSeenTwice`` counts samples a trajectory used twice in an epoch.
- ``s3Outages`` (``--outages``, default 5): the store is killed at a checkpoint step and the
  trainer is SIGKILLed once its checkpoint work is stuck on the dead store (a retry is logged), so
  that upload can never finish; then the store comes back and the trainer restarts.
  ``corruptCheckpointsResumed`` counts reruns that did not resume exactly the newest checkpoint
  that verifies when re-checked here beforehand (manifest, sizes, every sha256), or whose
  continued losses differ from the reference; ``hitMidUpload`` counts trials where the checkpoint
  under way was lost (never committed) or left files without a manifest.
- ``s3Blips`` (same count): the store is killed for a while during a run that is *not* killed:
  the run must end with exit 0 (never 78) after logging retries.
- ``operatorKills``: on the local cluster, the operator (a real process watching a fresh
  namespace) is SIGKILLed at each distinct point of a pass by its test-only hook
  (``finetune_operator.crashpoints``: before and after the status write, after creating the
  Service, the spec ConfigMap, the attempt Job), then started again; once the job's pods run,
  ``duplicateChildren`` counts Jobs, Services and ConfigMaps beyond one each and attempts beyond 1.
  ``--no-operator`` skips this part (it needs the cluster, `make cluster-up`).

Usage: python bench/faults.py [--seed 13] [--kills 10] [--outages 5] [--no-operator]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench import report

REPO_ROOT = Path(__file__).resolve().parents[1]
TOTAL_STEPS = 40  # 160 records, batch 8: 20 steps per epoch, 2 epochs
STEPS_PER_EPOCH = 20
EVERY = 5
LOSS_REL_TOL = 1e-5
LOSS_ABS_TOL = 1e-6


@dataclass
class Run:
    """What one trainer process logged: exit code, per-step losses and samples, commits, resume."""

    code: int | None
    losses: dict[int, float] = field(default_factory=dict)
    samples: dict[int, list[int]] = field(default_factory=dict)
    committed: list[int] = field(default_factory=list)
    resumed_from: int | None = None
    retries: int = 0
    permanent: bool = False


class Campaign:
    def __init__(self, work: Path, server: Any) -> None:
        from finetune_testkit.trainer_helpers import tiny_classification_files

        self.work = work
        self.server = server
        self.model, self.train = tiny_classification_files(work / "files", seed=1)

    def spec(self, prefix: str) -> Path:
        from finetune_testkit.trainer_helpers import classification_spec, write_config

        spec = classification_spec(
            f"file://{self.model}", f"file://{self.train}", None, f"{prefix}/out", f"{prefix}/ckpt",
            epochs=2, learningRate=5e-3,
        )  # fmt: skip
        spec["dataset"]["split"] = {"validation": 0.0}
        spec["training"]["evaluation"] = {"strategy": "no"}
        spec["checkpoint"] = {"uri": f"{prefix}/ckpt", "everySteps": EVERY, "keep": 2}
        path = self.work / f"spec-{uuid.uuid4().hex[:8]}.json"
        return write_config(path, spec)

    def start(self, config: Path, name: str) -> tuple[subprocess.Popen, Path, Path]:
        from finetune_testkit.trainer_helpers import trainer_env

        run_dir = self.work / name
        run_dir.mkdir(parents=True, exist_ok=True)
        samples = run_dir / "samples.jsonl"
        env = trainer_env(
            run_dir,
            **self.server.env(),
            FINETUNE_TEST_SAMPLE_LOG=str(samples),
            FINETUNE_STORAGE_RETRY_SECONDS="300",
        )
        log = run_dir / "trainer.log"
        command = [sys.executable, "-m", "finetune_trainer", "--config", str(config)]
        process = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        return process, log, samples

    @staticmethod
    def records(log: Path) -> list[dict[str, Any]]:
        from finetune_testkit.trainer_helpers import json_lines

        return json_lines(log.read_text(errors="replace"))

    def logged_step(self, log: Path) -> int:
        steps = [int(r["step"]) for r in self.records(log) if r.get("msg") == "train log" and "loss" in r]
        return max(steps, default=0)

    def collect(self, code: int | None, log: Path, samples: Path) -> Run:
        records = self.records(log)
        run = Run(code)
        for r in records:
            if r.get("msg") == "train log" and "loss" in r:
                run.losses[int(r["step"])] = float(r["loss"])
            elif r.get("msg") == "checkpoint committed":
                run.committed.append(int(r["checkpoint_step"]))
            elif r.get("msg") == "resuming":
                run.resumed_from = int(r["checkpoint_step"])
            elif r.get("msg") == "storage error; retrying":
                run.retries += 1
            elif r.get("msg") == "invalid configuration or data":
                run.permanent = True
        if samples.exists():
            per_step: dict[int, list[int]] = defaultdict(list)
            for line in samples.read_text().splitlines():
                entry = json.loads(line)
                per_step[int(entry["step"])].extend(entry["ids"])
            run.samples = dict(per_step)
        return run

    def run_to_end(self, config: Path, name: str, timeout: float = 900) -> Run:
        process, log, samples = self.start(config, name)
        code = process.wait(timeout)
        return self.collect(code, log, samples)

    def run_until(self, config: Path, name: str, step: int, on_step: Any = None, timeout: float = 600) -> Run:
        """Start a run; when it has logged ``step``, call ``on_step(log)`` (if any), then SIGKILL it."""
        process, log, samples = self.start(config, name)
        deadline = time.monotonic() + timeout
        while process.poll() is None and self.logged_step(log) < step:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{name}: step {step} not reached in {timeout}s; see {log}")
            time.sleep(0.05)  # polling a log file for a condition, with a deadline
        if on_step is not None:
            on_step(log)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        code = process.wait(60)
        return self.collect(code, log, samples)


def trajectory(runs: list[Run]) -> tuple[dict[int, float], dict[int, list[int]]]:
    """For each step, the losses and samples of the last run that executed it (pure)."""
    losses: dict[int, float] = {}
    samples: dict[int, list[int]] = {}
    for run in runs:
        losses.update(run.losses)
        samples.update(run.samples)
    return losses, samples


def samples_seen_twice(samples: dict[int, list[int]], steps_per_epoch: int) -> int:
    """Samples used more than once within one epoch of a trajectory (pure)."""
    per_epoch: dict[int, Counter] = defaultdict(Counter)
    for step, ids in samples.items():
        per_epoch[(step - 1) // steps_per_epoch].update(ids)
    return sum(count - 1 for counter in per_epoch.values() for count in counter.values() if count > 1)


def losses_differ(losses: dict[int, float], reference: dict[int, float]) -> list[int]:
    """Steps whose loss differs from the reference beyond float tolerance, or is missing (pure)."""
    bad = []
    for step, expected in reference.items():
        got = losses.get(step)
        if got is None or abs(got - expected) > LOSS_ABS_TOL + LOSS_REL_TOL * abs(expected):
            bad.append(step)
    return bad


def newest_intact(server: Any, prefix: str, work: Path) -> int | None:
    """The newest checkpoint whose manifest, sizes and every sha256 verify, checked independently
    of the trainer's resume (each candidate is downloaded in full)."""
    from finetune_trainer.checkpoints import CheckpointManager
    from finetune_trainer.distributed import WorldInfo
    from finetune_trainer.manifest import ManifestError

    checker = CheckpointManager(f"{prefix}/ckpt", 2, WorldInfo(0, 0, 1), "x", {}, "faults", attempt=0)
    for step, manifest, _ in checker.candidates():
        if manifest is None:
            continue
        try:
            checker.fetch(step, work / f"verify-{uuid.uuid4().hex[:6]}")
        except (ManifestError, FileNotFoundError):
            continue
        return step
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--kills", type=int, default=10, help="worker kills at random steps")
    parser.add_argument("--outages", type=int, default=5, help="S3 outages mid-upload (and as many blips)")
    parser.add_argument("--no-operator", action="store_true", help="skip the operator kills (no cluster)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    import os

    from finetune_testkit.private_s3 import PrivateS3

    work = Path(tempfile.mkdtemp(prefix="faults-"))
    operator_kills = None if args.no_operator else operator_campaign(work)
    server = PrivateS3(work / "s3")
    started = time.monotonic()
    try:
        report.progress(f"starting a private S3 at {server.endpoint}")
        server.start()
        os.environ.update(server.env())
        campaign = Campaign(work, server)
        bucket = server.bucket

        report.progress("reference: one uninterrupted run")
        reference = campaign.run_to_end(campaign.spec(f"s3://{bucket}/faults/reference"), "reference")
        if reference.code != 0 or len(reference.losses) != TOTAL_STEPS:
            raise RuntimeError(f"the reference run failed (exit {reference.code}); see {work / 'reference'}")

        kills = []
        for trial in range(args.kills):
            step = rng.randint(2, TOTAL_STEPS - 2)
            prefix = f"s3://{bucket}/faults/kill-{trial}"
            config = campaign.spec(prefix)
            report.progress(f"worker kill {trial + 1}/{args.kills}: SIGKILL after step {step}")
            first = campaign.run_until(config, f"kill-{trial}-a", step)
            second = campaign.run_to_end(config, f"kill-{trial}-b")
            losses, samples = trajectory([first, second])
            kills.append(
                {
                    "killedAfterStep": step,
                    "resumedFrom": second.resumed_from,
                    "exit": second.code,
                    "lossStepsDiffering": losses_differ(losses, reference.losses),
                    "samplesSeenTwice": samples_seen_twice(samples, STEPS_PER_EPOCH),
                    "samplesDifferFromReference": sorted(
                        s for s in reference.samples if samples.get(s) != reference.samples[s]
                    ),
                }
            )

        def stall_upload(log: Path) -> None:
            """Kill the store, then wait until checkpoint work is stuck on it (a retry is logged)."""
            before = sum(1 for r in campaign.records(log) if r.get("msg") == "storage error; retrying")
            server.kill()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and before == sum(
                1 for r in campaign.records(log) if r.get("msg") == "storage error; retrying"
            ):
                time.sleep(0.05)

        outages = []
        for trial in range(args.outages):
            step = EVERY * rng.randint(1, TOTAL_STEPS // EVERY - 1)
            prefix = f"s3://{bucket}/faults/outage-{trial}"
            config = campaign.spec(prefix)
            report.progress(f"S3 outage {trial + 1}/{args.outages}: store killed at checkpoint step {step}")
            first = campaign.run_until(config, f"outage-{trial}-a", step, on_step=stall_upload)
            server.start()
            uncommitted = count_uncommitted(server, prefix)
            # Before the rerun (whose retention may delete it): the newest checkpoint that verifies
            # independently (manifest, sizes, every sha256). The rerun must resume exactly that one.
            intact = newest_intact(server, prefix, work)
            second = campaign.run_to_end(config, f"outage-{trial}-b")
            losses, samples = trajectory([first, second])
            resumed = second.resumed_from
            verified = resumed == intact
            differing = losses_differ(losses, reference.losses)
            outages.append(
                {
                    "storeKilledAtStep": step,
                    "uncommittedDirsLeft": uncommitted,
                    "inFlightCheckpointLost": (resumed or 0) < step,
                    "newestIntactCheckpoint": intact,
                    "resumedFrom": resumed,
                    "exit": second.code,
                    "resumedCheckpointVerifies": verified,
                    "lossStepsDiffering": differing,
                    "samplesSeenTwice": samples_seen_twice(samples, STEPS_PER_EPOCH),
                }
            )

        blips = []
        for trial in range(args.outages):
            step = rng.randint(2, TOTAL_STEPS - 8)
            prefix = f"s3://{bucket}/faults/blip-{trial}"
            report.progress(f"S3 blip {trial + 1}/{args.outages}: store down from step {step} until a retry")
            blips.append(blip(campaign, server, campaign.spec(prefix), f"blip-{trial}", step, reference))
    finally:
        server.stop()

    result = {
        "seed": args.seed,
        "kills": args.kills,
        "outages": args.outages,
        "seconds": round(time.monotonic() - started, 1),
        "operatorKills": operator_kills,
        "workerKills": {
            "trials": kills,
            "lossCurvesDiffering": sum(1 for k in kills if k["lossStepsDiffering"]),
            "samplesSeenTwice": sum(k["samplesSeenTwice"] for k in kills),
            "failedToFinish": sum(1 for k in kills if k["exit"] != 0),
        },
        "s3Outages": {
            "trials": outages,
            "hitMidUpload": sum(
                1 for o in outages if o["uncommittedDirsLeft"] or o["inFlightCheckpointLost"]
            ),
            "corruptCheckpointsResumed": sum(
                1 for o in outages if not o["resumedCheckpointVerifies"] or o["lossStepsDiffering"]
            ),
            "failedToFinish": sum(1 for o in outages if o["exit"] != 0),
        },
        "s3Blips": {
            "trials": blips,
            "permanentFailures": sum(1 for b in blips if b["exit"] == 78 or b["permanent"]),
            "failedToFinish": sum(1 for b in blips if b["exit"] != 0),
            "lossCurvesDiffering": sum(1 for b in blips if b["lossStepsDiffering"]),
        },
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def operator_campaign(work: Path) -> dict[str, Any]:
    """SIGKILL the operator at each crash point of a pass; count duplicate children afterwards."""
    from bench.cluster_session import BenchCluster
    from finetune_operator.crashpoints import ENV, POINTS
    from finetune_testkit.finetunejobs import FineTuneJobs
    from localcluster.operator_process import OperatorProcess

    trials = []
    with BenchCluster() as cluster:
        cluster.install_crds()
        for point in POINTS:
            namespace = f"faults-{point}-{uuid.uuid4().hex[:5]}"
            report.progress(f"operator SIGKILLed at {point} (namespace {namespace})")
            cluster.create_namespace(namespace)
            log = work / f"operator-{point}.log"
            operator = OperatorProcess({**cluster.env(), ENV: point}, namespace, log)
            jobs = FineTuneJobs(cluster.api, namespace)
            try:
                operator.start()
                jobs.create(jobs.manifest("crashy", workers=2, gpus=1, maxRestarts=2))
                deadline = time.monotonic() + 120
                while operator.process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)  # waiting for the hook's SIGKILL, with a deadline
                killed = operator.process.poll() == -signal.SIGKILL
                operator.env.pop(ENV)
                operator.start()
                jobs.wait_pods_running("crashy", attempt=1, count=2, timeout=180)
                status = jobs.wait_condition("crashy", "Running", timeout=120)
                selector = "finetune.dev/job-name=crashy"
                services = cluster.core.list_namespaced_service(namespace, label_selector=selector).items
                maps = cluster.core.list_namespaced_config_map(namespace, label_selector=selector).items
                attempt_jobs = jobs.jobs("crashy")
                duplicates = (
                    max(len(attempt_jobs) - 1, 0)
                    + max(len(services) - 1, 0)
                    + max(len(maps) - 1, 0)
                    + max(int(status.get("attempt") or 1) - 1, 0)
                )
                trials.append(
                    {
                        "point": point,
                        "killedThere": killed,
                        "jobs": sorted(j.metadata.name for j in attempt_jobs),
                        "services": len(services),
                        "configMaps": len(maps),
                        "attempt": status.get("attempt"),
                        "restarts": status.get("restarts"),
                        "duplicateChildren": duplicates,
                    }
                )
            finally:
                operator.stop()
                cluster.core.delete_namespace(namespace, propagation_policy="Background")
    return {
        "trials": trials,
        "killedAtTheirPoint": sum(1 for t in trials if t["killedThere"]),
        "duplicateChildren": sum(t["duplicateChildren"] for t in trials),
    }


def count_uncommitted(server: Any, prefix: str) -> int:
    """Checkpoint directories holding files but no manifest (an upload the outage cut short)."""
    fs = server.filesystem()
    root = f"{prefix.removeprefix('s3://')}/ckpt"
    found = fs.find(root, detail=True) if fs.exists(root) else {}
    dirs: dict[str, set[str]] = defaultdict(set)
    for name, info in found.items():
        if info.get("type") == "file":
            rel = name[len(root) + 1 :]
            if rel.startswith("checkpoint-") and "/" in rel:
                directory, file = rel.split("/", 1)
                dirs[directory].add(file)
    return sum(1 for files in dirs.values() if "manifest.json" not in files)


def blip(
    campaign: Campaign, server: Any, config: Path, name: str, step: int, reference: Run
) -> dict[str, Any]:
    """Kill the store at ``step``, bring it back once the trainer logged a retry; the run must finish."""
    process, log, samples = campaign.start(config, name)
    deadline = time.monotonic() + 600
    while process.poll() is None and campaign.logged_step(log) < step and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    while (
        process.poll() is None
        and not any(r.get("msg") == "storage error; retrying" for r in campaign.records(log))
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    server.start()
    code = process.wait(600)
    run = campaign.collect(code, log, samples)
    return {
        "storeKilledAtStep": step,
        "retriesLogged": run.retries,
        "exit": code,
        "permanent": run.permanent,
        "lossStepsDiffering": losses_differ(run.losses, reference.losses),
    }


def summary_table(result: dict[str, Any]) -> str:
    k, o, b = result["workerKills"], result["s3Outages"], result["s3Blips"]
    kills, outages = f"(x{result['kills']})", f"(x{result['outages']})"
    rows = []
    if result.get("operatorKills"):
        ok = result["operatorKills"]
        points = len(ok["trials"])
        rows.append([f"operator SIGKILLed at each point of a pass (x{points})", "duplicate children",
                     ok["duplicateChildren"]])  # fmt: skip
    rows += [
        [f"worker killed at a random step {kills}", "resumed loss curves differing",
         k["lossCurvesDiffering"]],
        ["", "samples seen twice in an epoch", k["samplesSeenTwice"]],
        ["", "runs that did not finish", k["failedToFinish"]],
        [f"S3 killed mid-upload, then the trainer {outages}", "corrupt checkpoints resumed",
         o["corruptCheckpointsResumed"]],
        ["", "outages that cut an upload short", o["hitMidUpload"]],
        ["", "runs that did not finish", o["failedToFinish"]],
        [f"S3 down during a run {outages}", "permanent failures (exit 78)", b["permanentFailures"]],
        ["", "runs that did not finish", b["failedToFinish"]],
    ]  # fmt: skip
    return report.table(["fault", "outcome", "count"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("faults", outcome, summary_table(outcome))
