"""`make bench`: run the benchmarks, write bench/results/<name>.json, print each JSON and table.

Why one runner: the results of one session belong together (same machine, same versions, same
load), and docs/benchmarks.md is written from these files. A benchmark that fails is reported and
the others still run; the exit code is non-zero when any failed.

Usage: python bench/run_all.py [--only operator_scale,trainer_overhead,recovery,peer_training_operator]
       [--sizes 100,500,1000] [--nodes 200] [--steps 200]
Progress and tables go to stderr, JSON to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import traceback

from bench import (
    checkpoint_upload,
    distributed_throughput,
    docs_tables,
    fsdp,
    operator_scale,
    peer_training_operator,
    quality,
    recovery,
    report,
    sweep,
    trainer_overhead,
)

BENCHMARKS = {
    "operator_scale": operator_scale,
    "trainer_overhead": trainer_overhead,
    "recovery": recovery,
    "peer_training_operator": peer_training_operator,
    "sweep": sweep,
    "fsdp": fsdp,
    "checkpoint_upload": checkpoint_upload,
    "distributed_throughput": distributed_throughput,
    "quality": quality,
}


def arguments_for(name: str, args: argparse.Namespace) -> list[str]:
    if name in ("operator_scale", "peer_training_operator"):
        return ["--sizes", args.sizes, "--nodes", str(args.nodes)]
    if name == "trainer_overhead":
        return ["--steps", str(args.steps)]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks to run")
    parser.add_argument("--sizes", default="100,500,1000", help="operator_scale: N FineTuneJobs per run")
    parser.add_argument("--nodes", type=int, default=200, help="operator_scale: simulated 8-GPU nodes")
    parser.add_argument("--steps", type=int, default=200, help="trainer_overhead: optimizer steps per run")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite the tables in docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(
            f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    failed = []
    for name in chosen:
        module = BENCHMARKS[name]
        report.progress(f"=== {name}")
        try:
            result = module.main(arguments_for(name, args))
        except Exception:
            traceback.print_exc()
            report.progress(f"=== {name} FAILED (see the traceback above); going on with the others")
            failed.append(name)
            continue
        path = report.emit(name, result, module.summary_table(result))
        report.progress(f"=== {name} written to {path}")
    if not args.no_docs:
        docs_tables.main()
        report.progress(f"tables in {docs_tables.DOC} rewritten from bench/results/")
    if failed:
        report.progress(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
