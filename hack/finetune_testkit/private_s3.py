"""A private SeaweedFS S3 server that a test may stop and start without disturbing anyone else.

Why not the shared cluster's S3: the storage-fault tests and the fault campaign (bench/faults.py)
stop the server in the middle of a read or an upload. Stopping the shared one would break every
other test session on the machine, so these get their own ``weed mini`` — the same binary, the
same flags (``localcluster.s3.weed_spec``), a state directory of their own and a port block of
their own — and stop and start only that process (by its recorded pid, never by name). The data
directory survives a restart, as a real store's data survives an outage.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from localcluster import processes
from localcluster import s3 as s3_server
from localcluster.config import (
    PORT_BLOCK_SIZE,
    S3_ACCESS_KEY,
    S3_DEFAULT_BUCKET,
    S3_SECRET_KEY,
    ClusterConfig,
    Ports,
)
from localcluster.health import s3_healthy
from localcluster.waiting import wait_until

_NAME = "s3"


def free_port_base(first: int = 29600, last: int = 32760) -> int:
    """A block of consecutive free loopback ports, chosen from the pid so parallel runs differ.

    Below the kernel's ephemeral range (32768 and up by default): a port there that is free when
    checked can be taken a moment later by any outgoing connection, and the server then fails to
    bind (seen as "Port allocation failed" from weed). The cluster blocks start at 26400.
    """
    span = (last - first) // PORT_BLOCK_SIZE
    for offset in range(span):
        base = first + ((os.getpid() + offset) % span) * PORT_BLOCK_SIZE
        if not any(processes.port_in_use(base + i) for i in range(PORT_BLOCK_SIZE)):
            return base
    raise RuntimeError(f"no block of {PORT_BLOCK_SIZE} free ports between {first} and {last}")


class PrivateS3:
    """One ``weed mini`` under ``state_dir``: start(), stop(), endpoint, env(), filesystem()."""

    def __init__(self, state_dir: Path, port_base: int | None = None, start_timeout: float = 90) -> None:
        root = Path(state_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        # The port block is the state directory's for good: a restart must answer at the same URL.
        recorded = root / "port-base"
        if port_base is None:
            port_base = int(recorded.read_text()) if recorded.exists() else free_port_base()
        recorded.write_text(str(port_base))
        self.config = ClusterConfig(state_dir=root, cache_dir=root / "cache", ports=Ports(port_base))
        self.start_timeout = start_timeout
        self.bucket = S3_DEFAULT_BUCKET

    @property
    def endpoint(self) -> str:
        return self.config.s3_endpoint

    def env(self) -> dict[str, str]:
        """What a trainer process needs to reach this server (the operator sets the same names)."""
        return {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self):  # -> s3fs.S3FileSystem
        return s3_server.filesystem(self.endpoint)

    @property
    def running(self) -> bool:
        return processes.running_process(self.config.run_dir, _NAME) is not None

    def start(self) -> None:
        """Start the server (again) and wait until the bucket answers a signed listing."""
        if self.running:
            return
        identities = s3_server.write_identities(self.config)
        spec = s3_server.weed_spec(self.config, identities)
        process = processes.start_daemon(spec, self.config.run_dir, self.config.log_dir)
        wait_until(
            lambda: processes.exited_early(process) or s3_healthy(self.config),
            self.start_timeout,
            f"private S3 at {self.endpoint} to answer /healthz",
        )
        if processes.exited_early(process):
            raise RuntimeError(
                f"private S3 exited at start: {processes.log_tail(self.config.log_dir, _NAME)}"
            )
        # A listing answers before the volume server does: wait for a real write and read.
        wait_until(self._roundtrip, 60, f"a write and read on bucket {self.bucket} at {self.endpoint}")

    def _roundtrip(self) -> bool:
        fs = self.filesystem()
        probe = f"{self.bucket}/.private-s3-probe"
        fs.pipe_file(probe, b"ok")
        return fs.cat_file(probe) == b"ok"

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (SIGTERM to its own process group, SIGKILL after ``grace`` s)."""
        processes.stop_daemon(self.config.run_dir, _NAME, grace)

    def kill(self) -> None:
        """Stop it abruptly, as a crash or a network partition would (no graceful shutdown)."""
        processes.stop_daemon(self.config.run_dir, _NAME, grace=0.0)

    def __enter__(self) -> PrivateS3:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
