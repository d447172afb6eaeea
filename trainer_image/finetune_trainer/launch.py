"""Pod entry point around torchrun, keeping the exit-code contract
(docs/architecture.md, "Exit-code contract") intact across it.

Why this exists: torchrun exits 1 whenever any worker fails, whatever that worker's exit code was,
and it exits 1 too when it stops its workers on SIGTERM. The operator, however, must tell "invalid
configuration or data" (78, permanent) from "stopped after committing a checkpoint" (143) from a
retryable failure. So the pod runs

    python -m finetune_trainer.launch <torchrun arguments> -m finetune_trainer

which starts torchrun in its own session, forwards SIGTERM/SIGINT to it exactly once, lets every
worker record how it ended (`errors.record_exit`), and then exits with the decisive code and writes
the decisive one-line reason to the termination message. Everything else is torchrun's.

It also sizes the workers' thread pools before torchrun starts them (`threads`): the pod's CPU
limit divided by `--nproc-per-node` goes into OMP_NUM_THREADS/MKL_NUM_THREADS (unless the pod's
author set them), instead of torchrun's fixed 1 for several processes, or every core of the node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import threads
from .errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_RECORD_DIR_ENV,
    write_termination_message,
)


def read_records(directory: Path) -> list[dict[str, Any]]:
    """The exit records the workers wrote, ordered by rank; unreadable ones are skipped."""
    records = []
    for path in sorted(directory.glob("rank-*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("code"), int):
            records.append(record)
    return sorted(records, key=lambda record: int(record.get("rank", 0)))


def decisive_exit(torchrun_code: int, records: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """The pod's exit code and termination message from torchrun's code and the workers' records.

    Precedence: a permanent error anywhere (78) beats a coordinated stop (143), which beats a
    retryable failure; success needs torchrun's 0. A worker that died without a record (killed,
    out of memory) leaves torchrun's own code.
    """
    for wanted in (EXIT_CONFIG, EXIT_PREEMPTED):
        for record in records:
            if record["code"] == wanted:
                return wanted, str(record.get("message") or "")
    if torchrun_code == EXIT_OK:
        rank0 = next((r for r in records if r.get("rank") == 0), None)
        return EXIT_OK, str((rank0 or {}).get("message") or "")
    for record in records:
        if record["code"] != EXIT_OK:
            return record["code"], str(record.get("message") or "")
    code = 128 - torchrun_code if torchrun_code < 0 else (torchrun_code or EXIT_FAILURE)
    return code, (
        f"training failed (retryable): torchrun exited {torchrun_code} and no worker reported why "
        "(a worker was probably killed, e.g. out of memory); see the worker logs"
    )


def nproc_per_node(arguments: Sequence[str]) -> int:
    """torchrun's ``--nproc-per-node`` (either spelling, ``=`` or separate value); 1 when absent."""
    for index, argument in enumerate(arguments):
        for flag in ("--nproc-per-node", "--nproc_per_node"):
            value = None
            if argument.startswith(flag + "="):
                value = argument.split("=", 1)[1]
            elif argument == flag and index + 1 < len(arguments):
                value = arguments[index + 1]
            if value is not None:
                return int(value) if value.isdigit() else 1
        if argument in ("-m", "--module") or argument.endswith(".py"):
            break  # the training module's or script's own arguments follow
    return 1


def worker_thread_env(arguments: Sequence[str], env: dict[str, str]) -> dict[str, str]:
    """The OMP/MKL variables the workers get: the pod's CPUs shared among its processes."""
    share = threads.threads_per_process(threads.detect_budget(env), nproc_per_node(arguments))
    return threads.thread_env(share, env)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="finetune-exit-") as records_dir:
        env = {**os.environ, EXIT_RECORD_DIR_ENV: records_dir}
        env.update(worker_thread_env(arguments, env))
        command = [sys.executable, "-m", "torch.distributed.run", *arguments]
        # Own session: a signal for the pod reaches torchrun once, through us, as on a kubelet.
        child = subprocess.Popen(command, env=env, start_new_session=True)

        def forward(signum: int, _frame: Any) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        torchrun_code = child.wait()
        code, message = decisive_exit(torchrun_code, read_records(Path(records_dir)))
    if message:
        write_termination_message(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
