"""The operator as a real local process (`python -m finetune_operator`) against the local cluster.

Shared by the test fixtures (tests/plugins/operator.py) and `make demo`: both must see what users see
(the CLI, peering, JSON logs, /metrics), and both must be able to SIGKILL it at any point and start it
again without the restarted process waiting out its predecessor's peering lease.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from localcluster.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
# Fast cadences for tests and the demo: small restart backoff, frequent resync. The default `cadence`
# of OperatorProcess; a caller's base_args/extra_args come after them and override any of them.
TEST_ARGS = (
    "--resync-seconds",
    "5",
    "--restart-backoff-max-seconds",
    "2",
    "--reconcile-workers",
    "2",
    "--log-level",
    "DEBUG",
)


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """One `python -m finetune_operator` process; start/kill/restart at will."""

    def __init__(
        self,
        env: dict[str, str],
        namespace: str,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        base_args: tuple[str, ...] = (),
        cadence: tuple[str, ...] = TEST_ARGS,
    ):
        """`cadence` (default TEST_ARGS; () for the operator's own defaults), then `base_args`, then
        `extra_args` on the command line (a later flag wins)."""
        # A fixed Kopf peering identity: a restarted process is "the same pod" (a container restart), so
        # it does not wait out its killed predecessor's peering lease (60 s) as a new pod would.
        self.env = {
            # The tests' and the demo's trainer image (the process node ignores images); the operator's
            # image policy allows only the default image's repository unless told otherwise.
            "FINETUNE_ALLOWED_IMAGES": "finetune-trainer",
            **env,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "POD_ID": f"operator-{namespace}",
        }
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_loopback_port()
        self.extra_args = (*cadence, *base_args, *extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "finetune_operator",
            "--namespace",
            self.namespace,
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-bind-address",
            "127.0.0.1",
            *self.extra_args,
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        assert self.process is None or self.process.poll() is not None, "the operator is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- starting: {' '.join(self.command)}\n".encode())
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            self._ready,
            timeout,
            f"the operator's /metrics on 127.0.0.1:{self.metrics_port}",
            hint=f"see {self.log_path}",
        )

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with code {self.process and self.process.returncode}")
        return bool(self.metrics())

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as answer:
                return answer.read().decode()
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the operator crashes wherever it is, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops the operator's pod; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()
