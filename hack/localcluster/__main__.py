"""Command line: ``python -m localcluster up|down|status|build``.

Why a module CLI: the Makefile, CI and developers call the same code the pytest plugin calls.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from localcluster import cluster
from localcluster.binaries import ensure_binaries
from localcluster.config import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start (or reuse) the cluster; writes .cluster/kubeconfig and .cluster/env"
    )
    down = commands.add_parser("down", help="stop everything `up` started (idempotent)")
    down.add_argument("--keep-data", action="store_true", help="keep etcd and S3 data for the next `up`")
    commands.add_parser("status", help="show which components run and answer their health checks")
    commands.add_parser("build", help="build missing binaries into the cache (~/.cache/finetune-operator)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    config = load_config()

    if args.command == "build":
        timings = ensure_binaries(config)
        print(json.dumps({"built": timings} if timings else {"built": "nothing, cache is current"}))
    elif args.command == "up":
        timings = cluster.up(config, owner="cli")
        print(json.dumps({"ready": True, "kubeconfig": str(config.kubeconfig), "seconds": timings}))
        print(f"run `source {config.env_file}` to use kubectl and S3 from your shell", file=sys.stderr)
    elif args.command == "down":
        stopped = cluster.down(config, keep_data=args.keep_data)
        print(json.dumps({"stopped": stopped}))
    else:
        report = cluster.status(config)
        for name, row in report.items():
            state = (
                f"pid {row['pid']}, {'healthy' if row['healthy'] else 'NOT healthy'}"
                if row["pid"]
                else "stopped"
            )
            print(f"{name:26} {state}")
        return 0 if all(row["healthy"] for row in report.values() if row["pid"]) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
