"""The operator's own Prometheus metrics, served on their own port (DESIGN.md §5 naming).

A private registry (not prometheus_client's global one) so that tests can create several operators'
metrics in one process and so nothing else in the process leaks series onto /metrics. Per-job gauges
(labelled only `namespace` and `job`) re-exported from the trainers' progress belong to issue 6: add
them in `JobGauges` below.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from . import conditions as cond


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
        for kind in cond.ALL_TYPES:
            self.jobs.labels(condition=kind).set(0)
        for result in ("ok", "conflict", "error"):
            self.reconcile_total.labels(result=result)
        for kind in ("failure", "preemption"):
            self.restarts_total.labels(kind=kind)
        for outcome in ("succeeded", "failed"):
            self.completions_total.labels(outcome=outcome)
        self._true_by_job: dict[tuple[str, str], frozenset[str]] = {}

    def set_job_conditions(self, key: tuple[str, str], true_types: Iterable[str]) -> None:
        """Record which conditions are True for one job; the gauge is the count over all jobs."""
        self._true_by_job[key] = frozenset(true_types)
        self._refresh_jobs()

    def forget_job(self, key: tuple[str, str]) -> None:
        if self._true_by_job.pop(key, None) is not None:
            self._refresh_jobs()

    def _refresh_jobs(self) -> None:
        counts = dict.fromkeys(cond.ALL_TYPES, 0)
        for true_types in self._true_by_job.values():
            for kind in true_types:
                counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            self.jobs.labels(condition=kind).set(count)

    def serve(self, port: int, address: str) -> None:
        """Serve /metrics from a background thread (it never touches the event loop)."""
        if port:
            start_http_server(port, addr=address, registry=self.registry)
