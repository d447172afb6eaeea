"""Ranks, the control process group, and the stop flag that SIGTERM raises.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK. We initialise the default process group ourselves, before
HF does (accelerate reuses an initialised group), so that the trainer can agree on things before
training starts (which checkpoint to resume from). Agreement always goes through a gloo group:
the stop flag and the "a timed checkpoint is due" flag are tiny CPU tensors, and NCCL cannot
reduce CPU tensors.

SIGTERM only raises a local flag; the callback agrees on it with every rank through
``FlagAgreement`` so that every rank stops after the same step even when only one rank received
the signal. The agreement is overlapped with training: the all-reduce of the flags seen at step k
starts asynchronously at that boundary and is read at boundary k+1, so no step waits for a
round trip; every rank reads the same result at the same boundary, so the decision is still
taken by all ranks at the same step (one step later than a blocking all-reduce would).
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from .world import WorldInfo, world_from_env

__all__ = ["Control", "FlagAgreement", "StopFlag", "WorldInfo", "world_from_env"]


class Control:
    """Collective helpers over a gloo group; no-ops when running alone."""

    def __init__(self, world: WorldInfo) -> None:
        self.world = world
        self.group: Any = None
        if world.world_size > 1:
            if not dist.is_initialized():
                backend = "nccl" if torch.cuda.is_available() else "gloo"
                if backend == "nccl":
                    torch.cuda.set_device(world.local_rank)
                dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
            self.group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD

    def any_flags(self, *flags: bool) -> list[bool]:
        """Element-wise OR of boolean flags across ranks."""
        tensor = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
        if self.group is not None:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group)
        return [bool(v) for v in tensor.tolist()]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank."""
        if self.group is None:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


class FlagAgreement:
    """Boolean flags OR-ed across ranks, the all-reduce overlapped with the next step.

    ``collect()`` at a step boundary returns the flags every rank *started* at the previous
    boundary (all False at the first one); the caller decides, then ``start(*flags)`` sends this
    boundary's flags (computed after the decision, so a save just decided is not requested
    again). Alone (``overlapped`` False) there is no one to agree with and the caller uses its
    flags at once. ``drain()`` completes a pending all-reduce (end of training).
    """

    def __init__(self, control: Control, size: int) -> None:
        self.control = control
        self.size = size
        self._tensor: torch.Tensor | None = None
        self._work: Any = None

    @property
    def overlapped(self) -> bool:
        return self.control.group is not None

    def collect(self) -> list[bool]:
        if self._tensor is None:
            return [False] * self.size
        if self._work is not None:
            self._work.wait()
        values = [bool(v) for v in self._tensor.tolist()]
        self._tensor, self._work = None, None
        return values

    def start(self, *flags: bool) -> None:
        if len(flags) != self.size:
            raise ValueError(f"expected {self.size} flags, got {len(flags)}")
        self._tensor = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
        if self.control.group is not None:
            self._work = dist.all_reduce(
                self._tensor, op=dist.ReduceOp.MAX, group=self.control.group, async_op=True
            )

    def drain(self) -> None:
        """Complete a pending all-reduce (its result is dropped)."""
        if self._work is not None:
            self._work.wait()
        self._tensor, self._work = None, None


class StopFlag:
    """Set by SIGTERM (and SIGINT); read at step boundaries."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()
