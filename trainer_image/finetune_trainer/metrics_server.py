"""Prometheus metrics of rank 0: the operator pulls progress from here.

Names and port come from ``finetune_api.contract`` (the operator's parser reads the same names;
docs/architecture.md, "Progress is pulled" and "Conventions"); the trainer's series carry no
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

from finetune_api import contract as c

log = logging.getLogger(__name__)
PREFIX = c.METRIC_PREFIX


class TrainerMetrics:
    """The documented series in their own registry (so tests can run several in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=r)

        self.step = gauge(c.METRIC_STEP, "Optimizer steps completed (global step).")
        self.total_steps = gauge(c.METRIC_TOTAL_STEPS, "Optimizer steps the run will take in total.")
        self.epoch = gauge(c.METRIC_EPOCH, "Fractional epoch reached.")
        self.train_loss = gauge(c.METRIC_TRAIN_LOSS, "Training loss averaged over the last logging interval.")
        self.eval_loss = gauge(c.METRIC_EVAL_LOSS, "Loss on the validation set at the last evaluation.")
        self.eval_metric = gauge(
            c.METRIC_EVAL_METRIC, "Validation metrics at the last evaluation.", (c.METRIC_EVAL_METRIC_LABEL,)
        )
        self.best_metric = gauge(
            c.METRIC_BEST_METRIC, "Best value so far of the metric chosen for best-model tracking."
        )
        self.learning_rate = gauge(c.METRIC_LEARNING_RATE, "Learning rate of the last optimizer step.")
        self.samples_per_second = gauge(
            c.METRIC_SAMPLES_PER_SECOND, "Training samples per second over the last interval."
        )
        self.tokens_per_second = gauge(
            c.METRIC_TOKENS_PER_SECOND, "Training tokens (non-padding) per second."
        )
        self.checkpoint_last_step = gauge(
            c.METRIC_CHECKPOINT_LAST_STEP, "Step of the last committed checkpoint."
        )
        self.checkpoint_last_timestamp = gauge(
            c.METRIC_CHECKPOINT_LAST_TIMESTAMP, "Unix time of the last committed checkpoint."
        )
        self.checkpoint_save_duration = gauge(
            c.METRIC_CHECKPOINT_SAVE_DURATION, "Seconds the last local checkpoint save blocked training."
        )
        self.checkpoint_upload_duration = gauge(
            c.METRIC_CHECKPOINT_UPLOAD_DURATION, "Seconds the last background upload of this rank took."
        )
        self.checkpoint_upload_bytes = Counter(
            PREFIX + c.METRIC_CHECKPOINT_UPLOAD_BYTES, "Bytes uploaded to checkpoint storage.", registry=r
        )
        # prometheus_client appends "_" + c.METRIC_INFO to an Info's name.
        self.info = Info(PREFIX.removesuffix("_"), "Trainer and library versions.", registry=r)

    def set_info(self, versions: Mapping[str, str], task: str, method: str) -> None:
        self.info.info({**{k: str(v) for k, v in versions.items()}, "task": task, "method": method})

    address: tuple[str, int] | None = None

    def scrape(self) -> str:
        """Fetch our own endpoint over HTTP (used by the test hook FINETUNE_TEST_METRICS_SNAPSHOT)."""
        import urllib.request

        assert self.address is not None
        host, port = self.address
        with urllib.request.urlopen(f"http://{host}:{port}{c.METRICS_PATH}", timeout=10) as response:
            return response.read().decode()

    def serve(self, port: int | None = None, address: str | None = None) -> int:
        """Start the HTTP endpoint; returns the bound port."""
        bind = address or os.environ.get(c.ENV_POD_IP) or "127.0.0.1"
        chosen = int(os.environ.get(c.ENV_METRICS_PORT, c.METRICS_PORT)) if port is None else port
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
