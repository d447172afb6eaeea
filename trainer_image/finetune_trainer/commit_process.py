"""The checkpoint commit runs in a helper process, so the training thread never waits for its GIL.

Why a process and not only a thread: hashing and obstore's transfers release the GIL, but the
Python around a commit does not: s3fs/botocore for the part list, the fencing listing, the
manifest and retention (signing, XML, event hooks), the thread pools, the futures. On a busy
node a thread holding the GIL can be descheduled, and the training thread then stalls behind
it; measured with bench/checkpoint_upload.py (docs/benchmarks.md, "Checkpoint upload"), steps
took about 1.5x as long while a commit ran in a thread of the trainer. In a process of its own
the commit shares no interpreter lock with training.

The protocol is unchanged (checkpoints.py does the work, in the child): every file hashed and
uploaded, then this rank's part, then (rank 0) the manifest last and retention. The parent sends
one JSON line per checkpoint on the child's stdin and reads one JSON line back from its stdout;
the child logs to the inherited stderr (the pod's log), as the trainer does.

Lifetime: started by the first ``submit`` (on the training thread, which lives as long as the
process), it ignores SIGTERM/SIGINT (the trainer decides when to stop, and its last checkpoint
must still be committed after a SIGTERM), it runs at a lower CPU priority (nice 10: on a node
short of CPU the training thread goes first), it asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``: a stale writer never keeps uploading), and it exits when its stdin closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
COMMIT_NICENESS = 10


class CommitProcessError(RuntimeError):
    """The helper process failed a commit (its message says why) or died."""


class CommitProcess:
    """The parent's side: start the child once, then one request and one reply per checkpoint."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child (call this on a long-lived thread: the child dies with it)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "finetune_trainer.commit_process", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._exchange(self._settings)

    def commit(self, local_dir: Path, step: int, epoch: float) -> dict[str, Any]:
        """Upload and commit one local checkpoint in the child; its reply (see ``serve``)."""
        with self._lock:
            return self._exchange({"localDir": str(local_dir), "step": step, "epoch": epoch})

    def close(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._proc = None

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise CommitProcessError("the checkpoint commit process is not running")
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError) as error:
            line = ""
            reason = str(error)
        else:
            reason = "it closed its output"
        if not line:
            code = proc.poll()
            raise CommitProcessError(f"the checkpoint commit process ended (exit code {code}): {reason}")
        reply = json.loads(line)
        if "error" in reply:
            raise CommitProcessError(reply["error"])
        return reply


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGKILL when the parent (thread) dies; exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        raise SystemExit(0)


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The child's loop: settings first, then one commit per line until stdin closes."""
    from . import logs
    from .checkpoints import CheckpointManager
    from .world import WorldInfo

    settings = json.loads(requests.readline() or "null")
    if settings is None:
        return
    logs.set_context(**settings.get("logContext", {}))
    uploads: list[tuple[float, int]] = []
    manager = CheckpointManager(
        settings["uri"],
        settings["keep"],
        WorldInfo(**settings["world"]),
        settings["configHash"],
        settings["versions"],
        settings["job"],
        on_upload=lambda seconds, size: uploads.append((seconds, size)),
        attempt=settings["attempt"],
        commit_process=False,
    )
    manager.disable_test_hooks()  # the parent applies them: they concern the trainer process

    def answer(reply: dict[str, Any]) -> None:
        replies.write(json.dumps(reply) + "\n")
        replies.flush()

    answer({"ready": True})
    for line in requests:
        request = json.loads(line)
        logs.set_context(step=request["step"])
        uploads.clear()
        manager.last_commit = None
        try:
            manager.commit_now(Path(request["localDir"]), request["step"], request["epoch"])
        except Exception as error:  # the parent re-raises it on the training thread
            answer({"error": f"{type(error).__name__}: {error}"})
            continue
        commit = manager.last_commit
        answer(
            {
                "upload": list(uploads[0]) if uploads else None,
                "commit": asdict(commit) if commit is not None else None,
                "fenced": manager.fenced,
            }
        )


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(argv[0]))
    os.nice(COMMIT_NICENESS)  # when CPU is short, training goes first; the upload waits its turn
    from . import logs

    logs.configure(os.environ.get("FINETUNE_LOG_LEVEL", "INFO"), transformers=False)
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
