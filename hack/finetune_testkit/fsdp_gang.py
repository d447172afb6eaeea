"""Running 2-rank trainer gangs (torchrun, gloo on 127.0.0.1) for the FSDP tests and bench/fsdp.py.

``python -m finetune_testkit.fsdp_gang --peak-rss-dir DIR -- <trainer args>`` runs the trainer
under torchrun's worker and writes the worker's peak RSS (``ru_maxrss``, KiB, the kernel's own
high-water mark, so no sampling can miss a peak) to ``DIR/rank-<RANK>`` when it exits.
"""

from __future__ import annotations

import atexit
import os
import resource
import runpy
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from finetune_testkit.trainer_helpers import REPO, free_port


def start_gang(
    config: Path,
    env: Mapping[str, str],
    log: Path,
    nproc: int = 2,
    peak_rss_dir: Path | None = None,
) -> subprocess.Popen:
    """``nproc`` local workers of the trainer under torchrun; output goes to ``log``."""
    entry = ["-m", "finetune_trainer"]
    if peak_rss_dir is not None:
        entry = ["-m", "finetune_testkit.fsdp_gang", "--peak-rss-dir", str(peak_rss_dir), "--"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}",
        *entry, "--config", str(config),
    ]  # fmt: skip
    return subprocess.Popen(command, env=dict(env), cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def run_gang(
    config: Path,
    env: Mapping[str, str],
    log: Path,
    nproc: int = 2,
    peak_rss_dir: Path | None = None,
    timeout: float = 600,
) -> int:
    """Run a gang to its end; torchrun's exit status."""
    gang = start_gang(config, env, log, nproc, peak_rss_dir)
    try:
        return gang.wait(timeout=timeout)
    finally:
        if gang.poll() is None:
            gang.kill()


def read_peak_rss(directory: Path) -> dict[int, int]:
    """rank -> peak RSS in bytes, as written by the probe."""
    return {int(p.name.split("-")[1]): int(p.read_text()) * 1024 for p in directory.glob("rank-*")}


def _main(argv: list[str]) -> None:
    split = argv.index("--")
    peak_dir = Path(argv[argv.index("--peak-rss-dir") + 1])
    peak_dir.mkdir(parents=True, exist_ok=True)

    def write_peak() -> None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (peak_dir / f"rank-{os.environ.get('RANK', '0')}").write_text(str(rss))

    atexit.register(write_peak)
    sys.argv = ["finetune_trainer", *argv[split + 1 :]]
    runpy.run_module("finetune_trainer", run_name="__main__")


if __name__ == "__main__":
    _main(sys.argv[1:])
