"""The operator as the benchmarks run it: its own process, identity and log; RSS and CPU sampled.

Why a subprocess with psutil: peak RSS and CPU seconds must be the operator's alone, taken from
outside without instrumenting it. A sampler thread reads the RSS of the process (and any children)
a few times a second and keeps the peak; CPU seconds are user + system time at the end of the
measured window minus at its start.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import psutil

from localcluster.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    def __init__(self, env: dict[str, str], namespace: str, kubeconfig: Path, log_path: Path, *extra: str):
        self.env = {**env, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        self.namespace = namespace
        self.log_path = log_path
        self.port = free_loopback_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self._peak_rss = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "finetune_operator",
            "--namespace", self.namespace,
            "--metrics-port", str(self.port), "--metrics-bind-address", "127.0.0.1",
            "--standalone", "--log-level", "INFO",
            *self.extra,
        ]  # fmt: skip

    def start(self, timeout: float = 120) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            self._ready, timeout, f"the operator's /metrics on 127.0.0.1:{self.port}", hint=str(self.log_path)
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the operator exited early; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

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
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
                return answer.read().decode()
        except OSError:
            return ""

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
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
