"""The operator's own Prometheus metrics, served on their own port (docs/architecture.md "Conventions").

A private registry (not prometheus_client's global one) so that tests can create several operators'
metrics in one process and so nothing else in the process leaks series onto /metrics. Per-job gauges
(labelled only `namespace` and `job`) re-export each job's status.progress and status.checkpoint, so
one scrape of the operator gives a dashboard every job without scraping trainer pods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from finetune_operator import conditions as cond


class OperatorMetrics:
    """finetune_operator_* series: reconciles, jobs by condition, restarts, completions."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.reconcile_total = Counter(
            "finetune_operator_reconcile_total",
            "Reconcile passes by result (ok, conflict, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "finetune_operator_reconcile_duration_seconds",
            "Duration of one reconcile pass (observe, decide, act, write status).",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.jobs = Gauge(
            "finetune_operator_jobs",
            "FineTuneJobs whose condition of this type is True.",
            ["condition"],
            registry=self.registry,
        )
        self.restarts_total = Counter(
            "finetune_operator_restarts_total",
            "Gang restarts by kind: failure (counted against maxRestarts) or preemption (not counted).",
            ["kind"],
            registry=self.registry,
        )
        self.completions_total = Counter(
            "finetune_operator_completions_total",
            "FineTuneJobs that finished, by outcome (succeeded, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.status_writes_total = Counter(
            "finetune_operator_status_writes_total",
            "FineTuneJob status writes by result: written, unchanged (nothing to write), coalesced "
            "(a progress-only change held until the progress interval).",
            ["result"],
            registry=self.registry,
        )
        self.cache_objects = Gauge(
            "finetune_operator_cache_objects",
            "Children held in the operator's watch-fed cache, by kind (jobs, pods, services, configmaps).",
            ["kind"],
            registry=self.registry,
        )
        self.reconcile_triggers_total = Counter(
            "finetune_operator_reconcile_triggers_total",
            "What queued each reconcile pass: finetunejob (its watch), a child kind's watch event "
            "(jobs, pods, services, configmaps), or the timer the last pass set (requeue, resync, "
            "progress, coalesced, queue, expectation, retry). Tells which cause to fix (issue 16).",
            ["trigger"],
            registry=self.registry,
        )
        self.api_requests_total = Counter(
            "finetune_operator_api_requests_total",
            "Kubernetes API requests the operator sent, by HTTP verb and resource (watches included).",
            ["verb", "resource"],
            registry=self.registry,
        )
        for result in ("written", "unchanged", "coalesced"):
            self.status_writes_total.labels(result=result)
        for kind in cond.ALL_TYPES:
            self.jobs.labels(condition=kind).set(0)
        for result in ("ok", "conflict", "error"):
            self.reconcile_total.labels(result=result)
        for kind in ("failure", "preemption"):
            self.restarts_total.labels(kind=kind)
        for outcome in ("succeeded", "failed"):
            self.completions_total.labels(outcome=outcome)
        self._true_by_job: dict[tuple[str, str], frozenset[str]] = {}
        job_labels = ["namespace", "job"]

        def job_gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"finetune_operator_job_{name}", doc, job_labels, registry=self.registry)

        self.job_gauges = {
            "progress_ratio": job_gauge("progress_ratio", "Training progress, step / total steps (0..1)."),
            "step": job_gauge("step", "Training step of the job's rank 0."),
            "train_loss": job_gauge("train_loss", "Latest training loss."),
            "eval_metric": job_gauge(
                "eval_metric", "Best value so far of the job's training.evaluation.metric."
            ),
            "eta_seconds": job_gauge("eta_seconds", "Estimated seconds until training ends."),
            "checkpoint_timestamp_seconds": job_gauge(
                "checkpoint_timestamp_seconds", "Unix time of the last committed checkpoint."
            ),
        }

    def count_request(self, verb: str, resource: str) -> None:
        self.api_requests_total.labels(verb=verb, resource=resource).inc()

    def set_job_conditions(self, key: tuple[str, str], true_types: Iterable[str]) -> None:
        """Record which conditions are True for one job; the gauge is the count over all jobs.

        Updated by difference (one job's old set out, its new set in): recounting every job on
        every pass made this O(jobs) per pass, O(jobs²) over a run (issue 16)."""
        new = frozenset(true_types)
        old = self._true_by_job.get(key, frozenset())
        if new == old and key in self._true_by_job:
            return
        self._true_by_job[key] = new
        self._shift(old, new)

    def forget_job(self, key: tuple[str, str]) -> None:
        old = self._true_by_job.pop(key, None)
        if old is not None:
            self._shift(old, frozenset())
        for gauge in self.job_gauges.values():
            with contextlib.suppress(KeyError):
                gauge.remove(*key)

    def set_job_progress(self, key: tuple[str, str], status: Mapping[str, Any]) -> None:
        """Per-job gauges from a status; a value the status does not have is not exported."""
        values = job_gauge_values(status)
        for name, gauge in self.job_gauges.items():
            if values.get(name) is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)
            else:
                gauge.labels(*key).set(values[name])

    def _shift(self, old: frozenset[str], new: frozenset[str]) -> None:
        for kind in old - new:
            self.jobs.labels(condition=kind).dec()
        for kind in new - old:
            self.jobs.labels(condition=kind).inc()

    def serve(self, port: int, address: str) -> None:
        """Serve /metrics from a background thread (it never touches the event loop)."""
        if port:
            start_http_server(port, addr=address, registry=self.registry)


def job_gauge_values(status: Mapping[str, Any]) -> dict[str, float | None]:
    """The per-job gauge values a FineTuneJob status implies (None: unknown, not exported)."""
    progress = status.get("progress") or {}
    checkpoint = status.get("checkpoint") or {}
    percent = progress.get("percent")
    checkpoint_time = checkpoint.get("time")
    timestamp = None
    if checkpoint_time:
        timestamp = datetime.fromisoformat(str(checkpoint_time).replace("Z", "+00:00")).timestamp()
    return {
        "progress_ratio": None if percent is None else float(percent) / 100.0,
        "step": progress.get("step"),
        "train_loss": progress.get("trainLoss"),
        "eval_metric": progress.get("bestMetric"),
        "eta_seconds": progress.get("etaSeconds"),
        "checkpoint_timestamp_seconds": timestamp,
    }
