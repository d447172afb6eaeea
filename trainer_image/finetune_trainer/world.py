"""Which rank this process is, from torchrun's environment (pure, no torch).

Why apart from distributed.py: the checkpoint commit runs in a helper process
(commit_process.py) that needs the rank and world size but must not pay torch's import (seconds
and hundreds of MiB) for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class WorldInfo:
    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        return self.local_rank == 0


def world_from_env(env: dict[str, str] | None = None) -> WorldInfo:
    source = os.environ if env is None else env
    return WorldInfo(
        rank=int(source.get("RANK", "0")),
        local_rank=int(source.get("LOCAL_RANK", "0")),
        world_size=int(source.get("WORLD_SIZE", "1")),
    )
