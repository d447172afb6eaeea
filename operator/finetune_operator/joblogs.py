"""``python -m finetune_operator.joblogs JOB``: one FineTuneJob's logs from every rank, interleaved.

Why a command of our own: a gang's story is spread over N pods (``<job>-a<attempt>-<index>``), and
``kubectl logs -l`` labels lines with pod names, not ranks, and mixes attempts. This lists the pods
of one attempt (the job's current one by default), runs one ``kubectl logs`` per pod and prints
every line as it arrives, prefixed ``[rank N]`` (the pod's completion index = torchrun node rank).
It uses the ``kubectl`` on PATH and its current context, so it works wherever ``kubectl logs`` does
(RBAC: ``get`` on finetunejobs and pods, ``get`` on ``pods/log``).

Usage: ``python -m finetune_operator.joblogs my-job [-n NS] [-f] [--attempt N] [--tail N]``.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from finetune_operator import naming

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class RankPod:
    rank: int
    name: str


def rank_pods(pods: list[dict], attempt: int) -> list[RankPod]:
    """The pods of ``attempt`` ordered by rank (pods without a completion index are skipped)."""
    found: dict[int, RankPod] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if naming.attempt_of(meta.get("labels")) != attempt:
            continue
        index = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
        if index is not None and index.isdigit():
            rank = int(index)
            current = found.get(rank)
            if current is None or meta.get("name", "") > current.name:
                found[rank] = RankPod(rank, meta["name"])
    return [found[rank] for rank in sorted(found)]


def label_line(rank: int, line: str, width: int) -> str:
    return f"[rank {rank:>{width}}] {line}"


def _kubectl(kubectl: str, args: Sequence[str]) -> dict:
    result = subprocess.run([kubectl, *args, "-o", "json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _pump(process: subprocess.Popen[str], rank: int, lines: queue.Queue[tuple[int, str] | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put((rank, line.rstrip("\n")))
    lines.put(None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune_operator.joblogs", description=__doc__)
    parser.add_argument("job", help="FineTuneJob name")
    parser.add_argument("-n", "--namespace", help="namespace (default: kubectl's current one)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep streaming until the ranks exit")
    parser.add_argument("--attempt", type=int, help="attempt number (default: the job's status.attempt)")
    parser.add_argument("--tail", type=int, help="only the last N lines of each rank")
    args = parser.parse_args(argv)
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl is not on PATH; install it or `source .cluster/env` for the local cluster")
    scope = ["-n", args.namespace] if args.namespace else []
    job = _kubectl(kubectl, ["get", "finetunejob", args.job, *scope])
    attempt = args.attempt if args.attempt is not None else int((job.get("status") or {}).get("attempt") or 0)
    listing = _kubectl(kubectl, ["get", "pods", *scope, "-l", f"{naming.LABEL_JOB_NAME}={args.job}"])
    pods = rank_pods(listing.get("items") or [], attempt)
    if not pods:
        raise SystemExit(
            f"FineTuneJob {args.job} has no pods for attempt {attempt} (yet); "
            f"see `kubectl describe ftj {args.job}`"
        )
    extra = [
        *scope,
        *(["-f"] if args.follow else []),
        *([f"--tail={args.tail}"] if args.tail is not None else []),
    ]
    lines: queue.Queue[tuple[int, str] | None] = queue.Queue()
    processes = []
    for pod in pods:
        process = subprocess.Popen(
            [kubectl, "logs", pod.name, "-c", naming.CONTAINER_NAME, *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        threading.Thread(target=_pump, args=(process, pod.rank, lines), daemon=True).start()
    width = len(str(pods[-1].rank))
    open_streams = len(pods)
    try:
        while open_streams:
            item = lines.get()
            if item is None:
                open_streams -= 1
                continue
            print(label_line(item[0], item[1], width), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
    return max((process.wait() for process in processes), default=0)


if __name__ == "__main__":
    sys.exit(main())
