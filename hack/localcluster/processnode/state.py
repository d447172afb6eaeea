"""What the process node remembers about each pod across its own restarts (--state-dir).

Why: a restarted process node must not lose track of the processes it started (orphans would
keep running and hold ports and addresses) nor hand a pod's address to another pod. Each pod
gets ``<state-dir>/pods/<uid>/`` holding ``state.json`` (written atomically), its hosts file,
its volumes and a scratch directory.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcluster.processnode.podstatus import ContainerRecord


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    ip: str = ""
    start_time: str = ""
    containers: list[ContainerRecord] = field(default_factory=list)
    # container name -> [pid, start ticks] of the process currently running
    pids: dict[str, list[int]] = field(default_factory=dict)
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodState:
        containers = [ContainerRecord(**record) for record in data.pop("containers", [])]
        return cls(containers=containers, **data)


class PodDirs:
    """The on-disk layout of one pod."""

    def __init__(self, state_dir: Path, uid: str) -> None:
        self.root = state_dir / "pods" / uid

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def termination_file(self, container: str) -> Path:
        return self.root / "containers" / container / "termination-log"

    def create(self) -> None:
        for path in (self.scratch, self.root / "volumes", self.root / "containers"):
            path.mkdir(parents=True, exist_ok=True)
        if not self.hosts_file.exists():
            self.hosts_file.write_text("")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def save(dirs: PodDirs, state: PodState) -> None:
    tmp = dirs.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=1))
    os.replace(tmp, dirs.state_file)


def load_all(state_dir: Path) -> list[PodState]:
    """Every pod state found under ``state_dir``; unreadable ones are skipped."""
    states = []
    for path in sorted((state_dir / "pods").glob("*/state.json")):
        try:
            states.append(PodState.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return states
