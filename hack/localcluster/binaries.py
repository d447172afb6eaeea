"""Build the cluster's Go binaries once and cache them under ``~/.cache``, keyed by version.

Why build from Go modules: this machine has no container engine and no release downloads; the
Go module proxy is the one source available (DESIGN.md D2). ``hack/gobuild/<component>/go.mod``
pins the exact versions. A cache hit is only a speed-up: when a binary is missing (or a Kubernetes
binary does not report the pinned version) it is rebuilt, so a fresh machine works.

Kubernetes binaries are linked with the version stamped in (``-X .../version.gitVersion``) like
release builds; without it they report ``v0.0.0-master`` and clients warn about version skew.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster.config import ETCD_VERSION, KUBERNETES_VERSION, KWOK_VERSION, REPO_ROOT, ClusterConfig

log = logging.getLogger(__name__)

GOBUILD_DIR = REPO_ROOT / "hack" / "gobuild"
KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


@dataclass(frozen=True)
class BuildStep:
    """One `go build`/`go install` producing ``outputs`` in ``out_dir``."""

    component: str
    out_dir: Path
    outputs: tuple[str, ...]
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]


def kubernetes_ldflags(version: str = KUBERNETES_VERSION) -> str:
    """Linker flags that stamp the release version into the Kubernetes binaries."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {pkg}.{key}={value}" for pkg in packages for key, value in stamps.items())


def build_steps(config: ClusterConfig) -> list[BuildStep]:
    """Every build the cluster needs, in the order `build` runs them."""
    go_env = {"GOFLAGS": "-buildvcs=false"}
    kube_dir = config.kubernetes_bin_dir
    return [
        BuildStep(
            component=f"etcd {ETCD_VERSION}",
            out_dir=config.etcd_bin_dir,
            outputs=("etcd",),
            argv=(
                "go",
                "build",
                "-o",
                str(config.etcd_bin_dir / "etcd"),
                "go.etcd.io/etcd/server/v3",
            ),
            cwd=GOBUILD_DIR / "etcd",
            env=go_env,
        ),
        BuildStep(
            component=f"kubernetes {KUBERNETES_VERSION}",
            out_dir=kube_dir,
            outputs=KUBERNETES_COMMANDS,
            argv=(
                "go",
                "build",
                "-ldflags",
                kubernetes_ldflags(),
                "-o",
                f"{kube_dir}/",
                *(f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS),
            ),
            cwd=GOBUILD_DIR / "kubernetes",
            env=go_env,
        ),
        BuildStep(
            component=f"kwok {KWOK_VERSION}",
            out_dir=config.kwok_bin_dir,
            outputs=("kwok",),
            argv=("go", "install", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"),
            cwd=GOBUILD_DIR,
            env={**go_env, "GOBIN": str(config.kwok_bin_dir), "GOFLAGS": "-buildvcs=false"},
        ),
    ]


def _reports_version(binary: Path, version: str) -> bool:
    try:
        flag = ["version", "--client"] if binary.name == "kubectl" else ["--version"]
        result = subprocess.run([str(binary), *flag], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return version in result.stdout + result.stderr


def step_is_current(step: BuildStep) -> bool:
    """True when every output exists (and Kubernetes binaries carry the pinned version)."""
    for name in step.outputs:
        binary = step.out_dir / name
        if not os.access(binary, os.X_OK):
            return False
        if step.component.startswith("kubernetes") and not _reports_version(binary, KUBERNETES_VERSION):
            return False
    return True


def ensure_binaries(config: ClusterConfig) -> dict[str, float]:
    """Build whatever is missing; return seconds spent per component built (empty on a warm cache)."""
    timings: dict[str, float] = {}
    for step in build_steps(config):
        if step_is_current(step):
            continue
        go = shutil.which("go")
        if go is None:
            raise RuntimeError(
                f"{step.component} is not built in {step.out_dir} and the `go` command is missing; "
                "install Go 1.25 or newer (https://go.dev/doc/install) and run `python -m localcluster build`"
            )
        log.info("building %s into %s (one-time, a few minutes)", step.component, step.out_dir)
        step.out_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        result = subprocess.run(
            [go, *step.argv[1:]], cwd=step.cwd, env={**os.environ, **step.env}, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"building {step.component} failed in {step.cwd} (go.mod there pins the versions):\n"
                f"{result.stderr[-3000:]}"
            )
        timings[step.component] = round(time.monotonic() - started, 1)
        log.info("built %s in %.0fs", step.component, timings[step.component])
    return timings
