"""Where the local cluster keeps its state, which ports it uses, which versions it runs.

Why one module: the CLI, the pytest plugin and the docs must agree on every path and port, and
parallel clusters (two work trees on one machine) must be able to move all of them at once with
two environment variables:

- ``LOCALCLUSTER_DIR``: state directory (default ``<repo>/.cluster``).
- ``LOCALCLUSTER_PORT_BASE``: first of a block of 40 consecutive ports (default 26400). Ports are
  fixed offsets from it so a reused cluster is found again without any discovery.
- ``LOCALCLUSTER_CACHE``: where built binaries are cached (default
  ``~/.cache/finetune-operator``).

Nothing here does I/O; :func:`load_config` only reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KUEUE_VERSION = "v0.19.2"
# Debian bookworm's package (server and promtool); the cache directory is keyed by its major.minor.
PROMETHEUS_PACKAGE = "prometheus"
PROMETHEUS_VERSION = "2.42"

DEFAULT_PORT_BASE = 26400
PORT_BLOCK_SIZE = 40

# Loopback ranges (docs/architecture.md, "Loopback only"). Services, KWOK pods and KWOK node addresses
# all live in 127.0.0.0/8 so that nothing can ever dial a private network address by accident.
SERVICE_CIDR = "127.96.0.0/16"
KWOK_POD_CIDR = "127.64.0.0/16"
KWOK_NODE_NET = "127.63"

S3_ACCESS_KEY = "finetune-local"
S3_SECRET_KEY = "finetune-local-secret"
S3_DEFAULT_BUCKET = "finetune"

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ports:
    """Every port of the cluster, as fixed offsets from one base port."""

    base: int

    @property
    def etcd_client(self) -> int:
        return self.base

    @property
    def etcd_peer(self) -> int:
        return self.base + 1

    @property
    def apiserver(self) -> int:
        return self.base + 3

    @property
    def controller_manager(self) -> int:
        return self.base + 4

    @property
    def scheduler(self) -> int:
        return self.base + 5

    @property
    def kwok(self) -> int:
        return self.base + 6

    @property
    def s3(self) -> int:
        return self.base + 10

    # SeaweedFS `weed mini` runs several servers; each gets a port of our block.
    @property
    def weed_master(self) -> int:
        return self.base + 11

    @property
    def weed_master_grpc(self) -> int:
        return self.base + 12

    @property
    def weed_volume(self) -> int:
        return self.base + 13

    @property
    def weed_volume_grpc(self) -> int:
        return self.base + 14

    @property
    def weed_filer(self) -> int:
        return self.base + 15

    @property
    def weed_filer_grpc(self) -> int:
        return self.base + 16

    @property
    def s3_grpc(self) -> int:
        return self.base + 17

    @property
    def weed_admin(self) -> int:
        return self.base + 18

    @property
    def weed_admin_grpc(self) -> int:
        return self.base + 19

    @property
    def weed_metrics(self) -> int:
        return self.base + 20

    @property
    def weed_debug(self) -> int:
        return self.base + 21

    @property
    def process_node_first(self) -> int:
        """First of the ports left to the process node (offsets 30..39)."""
        return self.base + 30

    @property
    def process_node_kubelet(self) -> int:
        """The process node's kubelet endpoint (container logs for `kubectl logs`), in its block."""
        return self.process_node_first + 1

    @property
    def kueue_webhook(self) -> int:
        return self.base + 22

    @property
    def kueue_metrics(self) -> int:
        return self.base + 23

    @property
    def kueue_health(self) -> int:
        return self.base + 24

    @property
    def prometheus(self) -> int:
        return self.base + 25


@dataclass(frozen=True)
class ClusterConfig:
    """Paths and ports of one local cluster."""

    state_dir: Path
    cache_dir: Path
    ports: Ports

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def etcd_data_dir(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def s3_dir(self) -> Path:
        return self.state_dir / "s3"

    @property
    def kwok_dir(self) -> Path:
        return self.state_dir / "kwok"

    @property
    def process_node_dir(self) -> Path:
        return self.state_dir / "processnode"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def kubernetes_bin_dir(self) -> Path:
        return self.cache_dir / f"kubernetes-{KUBERNETES_VERSION}"

    @property
    def etcd_bin_dir(self) -> Path:
        return self.cache_dir / f"etcd-{ETCD_VERSION}"

    @property
    def kwok_bin_dir(self) -> Path:
        return self.cache_dir / f"kwok-{KWOK_VERSION}"

    @property
    def kueue_bin_dir(self) -> Path:
        return self.cache_dir / f"kueue-{KUEUE_VERSION}"

    @property
    def prometheus_bin_dir(self) -> Path:
        return self.cache_dir / f"prometheus-{PROMETHEUS_VERSION}"

    @property
    def kubectl(self) -> Path:
        return self.kubernetes_bin_dir / "kubectl"

    @property
    def process_node_pod_cidr(self) -> str:
        """The process node's pod addresses: a /16 of 127.0.0.0/8 chosen by the port block.

        Why derived: process-node pods bind real loopback addresses, so two clusters on one machine
        (parallel work trees, private test clusters) must not hand out the same ones. The default
        port base keeps ``127.0.0.0/16``; each further block of ports moves to the next /16, within
        127.0.x-127.59.x so it never overlaps the KWOK ranges (127.63/127.64) or Services (127.96).
        """
        block = ((self.ports.base - DEFAULT_PORT_BASE) // PORT_BLOCK_SIZE) % 60
        return f"127.{block}.0.0/16"


def load_config(environ: dict[str, str] | None = None) -> ClusterConfig:
    """Build the configuration from the environment (see module docstring)."""
    env = os.environ if environ is None else environ
    state_dir = Path(env.get("LOCALCLUSTER_DIR") or REPO_ROOT / ".cluster").resolve()
    cache_dir = Path(env.get("LOCALCLUSTER_CACHE") or Path.home() / ".cache" / "finetune-operator")
    raw_base = env.get("LOCALCLUSTER_PORT_BASE") or str(DEFAULT_PORT_BASE)
    try:
        base = int(raw_base)
    except ValueError:
        raise ValueError(
            f"LOCALCLUSTER_PORT_BASE={raw_base!r} is not a port number; set it to an integer "
            f"such as {DEFAULT_PORT_BASE} (the cluster uses {PORT_BLOCK_SIZE} ports from there)"
        ) from None
    if not 1024 <= base <= 65535 - PORT_BLOCK_SIZE:
        raise ValueError(
            f"LOCALCLUSTER_PORT_BASE={base} leaves no room for {PORT_BLOCK_SIZE} ports; "
            f"choose a value between 1024 and {65535 - PORT_BLOCK_SIZE}"
        )
    return ClusterConfig(state_dir=state_dir, cache_dir=cache_dir, ports=Ports(base))
