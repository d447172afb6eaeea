"""The operator as the benchmarks run it: default settings, its own identity and log; RSS and CPU sampled.

Why a subprocess with psutil: peak RSS and CPU seconds must be the operator's alone, taken from
outside without instrumenting it. It is the tests' and demo's harness
(`localcluster.operator_process`) with the operator's *default* cadence instead of the tests' fast
one, plus a sampler thread that reads the RSS of the process (and any children) a few times a
second and keeps the peak; CPU seconds are user + system time of the process tree.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import psutil

from localcluster.operator_process import OperatorProcess as HarnessProcess


class OperatorProcess(HarnessProcess):
    """`python -m finetune_operator --standalone` with default settings, measured from outside."""

    def __init__(self, env: dict[str, str], namespace: str, kubeconfig: Path, log_path: Path, *extra: str):
        super().__init__(
            {**env, "KUBECONFIG": str(kubeconfig)},
            namespace,
            log_path,
            extra_args=("--standalone", "--log-level", "INFO", *extra),
            cadence=(),
        )
        self._peak_rss = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.metrics_port

    def start(self, timeout: float = 120) -> None:
        super().start(timeout)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _processes(self) -> list[psutil.Process]:
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                rss = sum(p.memory_info().rss for p in self._processes())
            except psutil.Error:
                continue
            self._peak_rss = max(self._peak_rss, rss)

    def metrics_text(self) -> str:
        """The operator's own /metrics ('' when it does not answer)."""
        return self.metrics()

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def peak_rss_bytes(self) -> int:
        return self._peak_rss

    def stop(self) -> None:
        self._stop.set()
        super().stop()
