"""Build the cluster's Go binaries once and cache them under ``~/.cache``, keyed by version.

Why build from Go modules: this machine has no container engine and no release downloads; the
Go module proxy is the one source available (docs/architecture.md "Tested on real parts").
``hack/gobuild/<component>/go.mod``
pins the exact versions. A cache hit is only a speed-up: when a binary is missing (or a Kubernetes
binary does not report the pinned version) it is rebuilt, so a fresh machine works.

Kueue is `go install`ed from its published module (its go.mod has no replace lines, so the
release's own pins apply). Prometheus and promtool come from Debian's ``prometheus`` package,
fetched with `apt-get download` and unpacked with `dpkg -x` into the cache: no root, no system
state (the package's binaries are static Go programs).

Every build prints one line when it starts, one every 30 s while it runs and one with its duration
(:mod:`localcluster.buildprogress`), so a first run on a fresh machine never sits silent.

Kubernetes binaries are linked with the version stamped in (``-X .../version.gitVersion``) like
release builds; without it they report ``v0.0.0-master`` and clients warn about version skew.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localcluster.buildprogress import run_build
from localcluster.config import (
    ETCD_VERSION,
    KUBERNETES_VERSION,
    KUEUE_VERSION,
    KWOK_VERSION,
    PROMETHEUS_PACKAGE,
    PROMETHEUS_VERSION,
    REPO_ROOT,
    ClusterConfig,
)

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
    tool: str = "go"
    version_probe: str = ""  # when set, each output's `--version` must mention it


def prometheus_unpack_script(out_dir: Path, package: str = PROMETHEUS_PACKAGE) -> str:
    """Shell text that downloads the Debian package and copies its two binaries into ``out_dir``."""
    return (
        'set -e; work=$(mktemp -d); trap \'rm -rf "$work"\' EXIT; cd "$work"; '
        f"apt-get download -q {package}; dpkg -x {package}_*.deb root; "
        f"cp root/usr/bin/prometheus root/usr/bin/promtool '{out_dir}/'"
    )


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
        BuildStep(
            component=f"kueue {KUEUE_VERSION}",
            out_dir=config.kueue_bin_dir,
            outputs=("kueue",),
            argv=("go", "install", f"sigs.k8s.io/kueue/cmd/kueue@{KUEUE_VERSION}"),
            cwd=GOBUILD_DIR,
            env={**go_env, "GOBIN": str(config.kueue_bin_dir)},
        ),
        BuildStep(
            component=f"prometheus {PROMETHEUS_VERSION} (Debian package)",
            out_dir=config.prometheus_bin_dir,
            outputs=("prometheus", "promtool"),
            argv=("sh", "-c", prometheus_unpack_script(config.prometheus_bin_dir)),
            cwd=GOBUILD_DIR,
            env={},
            tool="apt-get",
            version_probe=f"version {PROMETHEUS_VERSION}.",
        ),
    ]


TRAINING_OPERATOR_VERSION = "v1.9.4"
TRAINING_OPERATOR_MODULE = "github.com/kubeflow/training-operator"


def training_operator_step(config: ClusterConfig) -> BuildStep:
    """Kubeflow's training-operator, the peer of `bench/peer_training_operator.py` (not part of the
    cluster: built on first use by that benchmark). Its main package is upstream's main.go with one
    change, the webhook server's bind address (see hack/gobuild/training-operator/README.md)."""
    out_dir = config.cache_dir / f"training-operator-{TRAINING_OPERATOR_VERSION}"
    return BuildStep(
        component=f"training-operator {TRAINING_OPERATOR_VERSION}",
        out_dir=out_dir,
        outputs=("training-operator",),
        argv=("go", "build", "-o", str(out_dir / "training-operator"), "./cmd/training-operator"),
        cwd=GOBUILD_DIR / "training-operator",
        env={"GOFLAGS": "-buildvcs=false"},
    )


def ensure_built(step: BuildStep) -> float:
    """Build one step if its outputs are missing; seconds spent (0 when cached). Raises with the
    compiler's message on failure."""
    if step_is_current(step):
        return 0.0
    tool = shutil.which(step.tool)
    if tool is None:
        raise _missing_tool_error(step)
    step.out_dir.mkdir(parents=True, exist_ok=True)
    argv = [tool, *step.argv[1:]]
    result = run_build(argv, step.cwd, {**os.environ, **step.env}, step.component, "1/1")
    if result.returncode != 0:
        raise RuntimeError(f"building {step.component} failed in {step.cwd}:\n{result.stderr_tail}")
    return result.seconds


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
        if step.version_probe and not _reports_version(binary, step.version_probe):
            return False
    return True


def _missing_tool_error(step: BuildStep) -> RuntimeError:
    if step.tool == "go":
        how = "install Go 1.25 or newer (https://go.dev/doc/install)"
    else:
        how = (
            "this needs a Debian/Ubuntu machine with apt-get and dpkg; elsewhere put `prometheus` and "
            f"`promtool` {PROMETHEUS_VERSION}.x into {step.out_dir} yourself"
        )
    return RuntimeError(
        f"{step.component} is not in {step.out_dir} and the `{step.tool}` command is missing; "
        f"{how}, then run `python -m localcluster build`"
    )


def ensure_binaries(config: ClusterConfig, only: tuple[str, ...] = ()) -> dict[str, float]:
    """Build whatever is missing; return seconds spent per component built (empty on a warm cache).

    ``only`` limits this to components whose name starts with one of its entries (e.g.
    ``("prometheus",)`` for a test that needs only promtool)."""
    timings: dict[str, float] = {}
    steps = [step for step in build_steps(config) if not only or step.component.startswith(only)]
    for number, step in enumerate(steps, start=1):
        position = f"{number}/{len(steps)}"
        if step_is_current(step):
            log.info("[%s] %s: cached in %s", position, step.component, step.out_dir)
            continue
        tool = shutil.which(step.tool)
        if tool is None:
            raise _missing_tool_error(step)
        step.out_dir.mkdir(parents=True, exist_ok=True)
        argv = [tool, *step.argv[1:]] if step.argv[0] == step.tool else list(step.argv)
        result = run_build(argv, step.cwd, {**os.environ, **step.env}, step.component, position)
        if result.returncode != 0:
            raise RuntimeError(
                f"building {step.component} failed in {step.cwd} (hack/gobuild and localcluster/config.py "
                "pin the versions; check that the Go proxy / Debian mirror is reachable):\n"
                f"{result.stderr_tail}"
            )
        timings[step.component] = result.seconds
    return timings
