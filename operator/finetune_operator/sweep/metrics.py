"""The sweep controller's Prometheus series, on the operator's registry (one /metrics for all).

- `finetune_operator_sweep_trials{namespace,sweep,state}`: trials of each sweep by state (running,
  succeeded, pruned, failed); sum by state for the whole operator.
- `finetune_operator_sweep_best_value{namespace,sweep}`: the best trial's objective value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

STATES = ("running", "succeeded", "pruned", "failed")


class SweepMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.trials = Gauge(
            "finetune_operator_sweep_trials",
            "Trials of a FineTuneSweep by state (running, succeeded, pruned, failed).",
            ["namespace", "sweep", "state"],
            registry=registry,
        )
        self.best_value = Gauge(
            "finetune_operator_sweep_best_value",
            "Objective value of a FineTuneSweep's best completed trial.",
            ["namespace", "sweep"],
            registry=registry,
        )

    def observe(self, key: tuple[str, str], status: Mapping[str, Any]) -> None:
        counts = status.get("trials") or {}
        for state in STATES:
            self.trials.labels(*key, state).set(float(counts.get(state) or 0))
        best = (status.get("bestTrial") or {}).get("value")
        if best is None:
            with contextlib.suppress(KeyError):
                self.best_value.remove(*key)
        else:
            self.best_value.labels(*key).set(float(best))

    def forget(self, key: tuple[str, str]) -> None:
        for state in STATES:
            with contextlib.suppress(KeyError):
                self.trials.remove(*key, state)
        with contextlib.suppress(KeyError):
            self.best_value.remove(*key)
