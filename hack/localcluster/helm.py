"""Build the `helm` CLI once from its Go module and cache it next to the cluster binaries.

Why build it: this machine has no release downloads, only the Go module proxy (docs/architecture.md
"Tested on real parts"), and
the chart's tests (`helm lint`, `helm template`, `helm install` into the local cluster) need a real
helm. It lands in ``<cache>/helm-<version>/helm`` like the cluster's binaries (see
:mod:`localcluster.binaries`); a cache hit is only a speed-up.

The link flags are those of helm's own Makefile: without them `helm version` reports no patch
release and, worse, `helm template` and `helm lint` assume Kubernetes 1.20 (helm's fallback) and
reject a chart whose ``kubeVersion`` asks for anything newer. We stamp the Kubernetes minor version
of the client-go that this helm release is built with.

Usage: ``python -m localcluster.helm`` prints the binary's path (building it when missing).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from localcluster.buildprogress import run_build
from localcluster.config import ClusterConfig, load_config

log = logging.getLogger(__name__)

HELM_VERSION = "v3.22.0"
# helm v3.22.0 is built against k8s.io/client-go v0.37, i.e. Kubernetes 1.37 (go.mod of the release).
HELM_KUBERNETES_MINOR = "37"
HELM_MODULE = "helm.sh/helm/v3"


def helm_bin_dir(config: ClusterConfig, version: str = HELM_VERSION) -> Path:
    """Where the cached helm of ``version`` lives: ``<cache>/helm-<version>/``."""
    return config.cache_dir / f"helm-{version}"


def helm_ldflags(version: str = HELM_VERSION, kubernetes_minor: str = HELM_KUBERNETES_MINOR) -> str:
    """Link flags that stamp helm's version and its default Kubernetes version, as its Makefile does."""
    stamps = {
        f"{HELM_MODULE}/internal/version.version": version,
        f"{HELM_MODULE}/internal/version.gitTreeState": "clean",
        f"{HELM_MODULE}/pkg/chartutil.k8sVersionMajor": "1",
        f"{HELM_MODULE}/pkg/chartutil.k8sVersionMinor": kubernetes_minor,
        f"{HELM_MODULE}/pkg/lint/rules.k8sVersionMajor": "1",
        f"{HELM_MODULE}/pkg/lint/rules.k8sVersionMinor": kubernetes_minor,
    }
    return " ".join(f"-X {key}={value}" for key, value in stamps.items())


def install_argv(version: str = HELM_VERSION) -> list[str]:
    """The `go install` command line (GOBIN is set in the environment)."""
    return [
        "go",
        "install",
        "-trimpath",
        "-ldflags",
        helm_ldflags(version),
        f"{HELM_MODULE}/cmd/helm@{version}",
    ]


def _reports_version(binary: Path, version: str) -> bool:
    try:
        result = subprocess.run(
            [str(binary), "version", "--short"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return False
    return result.stdout.strip().startswith(version)


def ensure_helm(config: ClusterConfig | None = None, version: str = HELM_VERSION) -> Path:
    """Path of a helm binary of ``version``, built with `go install` into the cache when missing."""
    config = config or load_config()
    out_dir = helm_bin_dir(config, version)
    binary = out_dir / "helm"
    if os.access(binary, os.X_OK) and _reports_version(binary, version):
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            f"helm {version} is not built in {out_dir} and the `go` command is missing; install Go 1.25 "
            "or newer (https://go.dev/doc/install) and run `python -m localcluster.helm`"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(out_dir), "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    argv = install_argv(version)
    result = run_build([go, *argv[1:]], out_dir, env, f"helm {version}")
    if result.returncode != 0:
        raise RuntimeError(
            f"building helm {version} failed (`{' '.join(argv)}` in {out_dir}); check that the Go module "
            f"proxy is reachable (go env GOPROXY):\n{result.stderr_tail}"
        )
    if not _reports_version(binary, version):
        raise RuntimeError(
            f"{binary} was built but does not report version {version}; delete {out_dir} and retry"
        )
    return binary


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(ensure_helm())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
