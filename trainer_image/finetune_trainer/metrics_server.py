"""Prometheus metrics of rank 0 (D6): the operator pulls progress from here.

Names follow DESIGN.md §5 and the contract in docs/architecture.md; the trainer's series carry no
per-job labels (the operator knows which pod it scrapes and adds namespace/job itself). Durations
are gauges holding the last value, so a single scrape tells the operator the current state.
The server binds ``POD_IP`` when set (the pod's own address), else 127.0.0.1; the port is
``FINETUNE_METRICS_PORT`` (default 9090, 0 picks a free one and logs it).
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

log = logging.getLogger(__name__)
PREFIX = "finetune_trainer_"
DEFAULT_PORT = 9090


class TrainerMetrics:
    """The documented series in their own registry (so tests can run several in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=r)

        self.step = gauge("step", "Optimizer steps completed (global step).")
        self.total_steps = gauge("total_steps", "Optimizer steps the run will take in total.")
        self.epoch = gauge("epoch", "Fractional epoch reached.")
        self.train_loss = gauge("train_loss", "Training loss averaged over the last logging interval.")
        self.eval_loss = gauge("eval_loss", "Loss on the validation set at the last evaluation.")
        self.eval_metric = gauge("eval_metric", "Validation metrics at the last evaluation.", ("metric",))
        self.best_metric = gauge(
            "best_metric", "Best value so far of the metric chosen for best-model tracking."
        )
        self.learning_rate = gauge("learning_rate", "Learning rate of the last optimizer step.")
        self.samples_per_second = gauge(
            "samples_per_second", "Training samples per second over the last interval."
        )
        self.tokens_per_second = gauge("tokens_per_second", "Training tokens (non-padding) per second.")
        self.checkpoint_last_step = gauge("checkpoint_last_step", "Step of the last committed checkpoint.")
        self.checkpoint_last_timestamp = gauge(
            "checkpoint_last_timestamp_seconds", "Unix time of the last committed checkpoint."
        )
        self.checkpoint_save_duration = gauge(
            "checkpoint_save_duration_seconds", "Seconds the last local checkpoint save blocked training."
        )
        self.checkpoint_upload_duration = gauge(
            "checkpoint_upload_duration_seconds", "Seconds the last background upload of this rank took."
        )
        self.checkpoint_upload_bytes = Counter(
            PREFIX + "checkpoint_upload_bytes", "Bytes uploaded to checkpoint storage.", registry=r
        )
        self.info = Info(PREFIX.rstrip("_"), "Trainer and library versions.", registry=r)

    def set_info(self, versions: Mapping[str, str], task: str, method: str) -> None:
        self.info.info({**{k: str(v) for k, v in versions.items()}, "task": task, "method": method})

    address: tuple[str, int] | None = None

    def scrape(self) -> str:
        """Fetch our own endpoint over HTTP (used by the test hook FINETUNE_TEST_METRICS_SNAPSHOT)."""
        import urllib.request

        assert self.address is not None
        host, port = self.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            return response.read().decode()

    def serve(self, port: int | None = None, address: str | None = None) -> int:
        """Start the HTTP endpoint; returns the bound port."""
        bind = address or os.environ.get("POD_IP") or "127.0.0.1"
        chosen = int(os.environ.get("FINETUNE_METRICS_PORT", DEFAULT_PORT)) if port is None else port
        server: Any
        server, _thread = start_http_server(chosen, addr=bind, registry=self.registry)
        bound = int(server.server_port)
        self.address = (bind, bound)
        log.info("metrics server listening", extra={"fields": {"address": bind, "port": bound}})
        return bound


def library_versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers

    from . import __version__

    return {
        "trainer": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
    }
