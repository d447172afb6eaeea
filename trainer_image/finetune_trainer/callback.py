"""The bridge from HF Trainer events to checkpoints, metrics, logs and the coordinated stop.

At every optimizer-step boundary all ranks agree on two flags — "SIGTERM seen" and "a timed
checkpoint is due" — so that every rank takes the same decision at the same step (a rank-local
clock or signal would otherwise make one rank save or stop alone and deadlock the others). With
several ranks the all-reduce is overlapped with the next step (``FlagAgreement``): the flags of
step k decide at step k+1 on every rank, and no step waits for a round trip. A save
is requested through ``control.should_save``, so HF writes the complete resumable state (weights,
optimizer, scheduler, RNG, data position); ``on_save`` then hands the directory to the checkpoint
manager for the background upload and commit.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from . import logs as json_logs
from .checkpoints import CheckpointManager
from .distributed import Control, FlagAgreement, StopFlag, WorldInfo
from .evaluation import perplexity
from .manifest import checkpoint_dir_name
from .metrics_server import TrainerMetrics
from .settings import CheckpointSettings

log = logging.getLogger(__name__)


def save_due(step: int, every_steps: int | None) -> bool:
    return bool(every_steps) and step > 0 and step % int(every_steps) == 0


def best_metric_after(
    previous: float | None, metrics: Mapping[str, Any], args: TrainingArguments
) -> float | None:
    """The best metric including the evaluation whose `metrics` these are.

    HF's Trainer updates `state.best_metric` (`_determine_best_metric`) only after `on_evaluate`
    returns, so in `on_evaluate` the state still holds the best before this evaluation. This applies
    the same rule (metric_for_best_model, greater_is_better) so the gauge is current at once.
    """
    name = args.metric_for_best_model
    if not name:
        return previous
    value = metrics.get(name if name.startswith("eval_") else f"eval_{name}")
    if not isinstance(value, int | float) or math.isnan(float(value)):
        return previous
    if previous is None:
        return float(value)
    better = value > previous if args.greater_is_better else value < previous
    return float(value) if better else previous


class TrainerBridge(TrainerCallback):
    """Checkpoint schedule, SIGTERM agreement, Prometheus updates and JSON log lines."""

    def __init__(
        self,
        world: WorldInfo,
        control: Control,
        stop: StopFlag,
        checkpoint: CheckpointSettings,
        manager: CheckpointManager | None,
        metrics: TrainerMetrics | None,
        total_batch_size: int,
        task: str,
    ) -> None:
        self.world = world
        self.collective = control
        self.stop = stop
        self.checkpoint = checkpoint
        self.manager = manager
        self.metrics = metrics
        self.total_batch_size = total_batch_size
        self.task = task
        self.stopped_at: int | None = None
        self.agreement = FlagAgreement(control, 2)
        self._last_save = time.monotonic()
        self._save_requested = 0.0
        self._last_log_time = time.monotonic()
        self._last_log_step = 0
        self._last_tokens = 0

    # -------------------------------------------------------------- step boundary

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        self._last_save = time.monotonic()
        self._last_log_time = time.monotonic()
        self._last_log_step = state.global_step
        self._last_tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        if self.metrics is not None:
            self.metrics.total_steps.set(state.max_steps)
            self.metrics.step.set(state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        step = state.global_step
        json_logs.set_context(step=step)
        if self.agreement.overlapped:
            stop, timed = self.agreement.collect()  # what every rank saw at the previous boundary
        else:
            stop, timed = self.stop.requested, self._timed_save_due()
        can_save = self.manager is not None
        if stop:
            self.stopped_at = step
            control.should_training_stop = True
            control.should_save = can_save
            log.warning(
                "stop requested; saving a checkpoint at this step on every rank and stopping",
                extra={"fields": {"signal": self.stop.signal_name or "peer rank"}},
            )
        elif can_save and (timed or save_due(step, self.checkpoint.every_steps)):
            control.should_save = True
        if control.should_save:
            self._save_requested = time.monotonic()
        if self.agreement.overlapped and not control.should_training_stop:
            # Sent after the decision: a save decided now resets the clock, so it is not asked again.
            self.agreement.start(self.stop.requested, not control.should_save and self._timed_save_due())
        if self.metrics is not None:
            self.metrics.step.set(step)
            self.metrics.epoch.set(state.epoch or 0.0)
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        self.agreement.drain()  # no all-reduce may stay pending under the collectives that follow
        return control

    def _timed_save_due(self) -> bool:
        every_seconds = self.checkpoint.every_seconds
        return bool(every_seconds) and time.monotonic() - self._last_save >= float(every_seconds or 0)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any):
        if self.manager is None:
            return control
        if self.metrics is not None:
            self.metrics.checkpoint_save_duration.set(time.monotonic() - self._save_requested)
        # Every rank has finished writing its files before anyone uploads.
        self.collective.barrier()
        local_dir = os.path.join(args.output_dir, checkpoint_dir_name(state.global_step))
        self.manager.submit(local_dir, state.global_step, float(state.epoch or 0.0))
        self._last_save = time.monotonic()
        return control

    # -------------------------------------------------------------- reporting

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **_: Any
    ):
        if not self.world.is_main or not logs:
            return control
        now = time.monotonic()
        fields: dict[str, Any] = {k: v for k, v in logs.items() if isinstance(v, int | float)}
        steps = state.global_step - self._last_log_step
        elapsed = now - self._last_log_time
        if "loss" in logs and steps > 0 and elapsed > 0:
            fields["samples_per_second"] = steps * self.total_batch_size / elapsed
            tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
            fields["tokens_per_second"] = (tokens - self._last_tokens) / elapsed
            self._last_log_time, self._last_log_step, self._last_tokens = now, state.global_step, tokens
        kind = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        json_logs.event(log, f"{kind} log", **{"epoch": state.epoch, **fields, "step": state.global_step})
        if self.metrics is not None:
            self._update_metrics(fields, state)
        return control

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics=None, **_: Any
    ):
        if metrics is not None and self.task == "causal-lm" and "eval_loss" in metrics:
            metrics["eval_perplexity"] = perplexity(float(metrics["eval_loss"]))
        if self.world.is_main and metrics and self.metrics is not None:
            self._update_metrics(metrics, state)
            best = best_metric_after(state.best_metric, metrics, args)
            if best is not None:
                self.metrics.best_metric.set(best)
        return control

    def _update_metrics(self, values: dict[str, Any], state: TrainerState) -> None:
        m = self.metrics
        assert m is not None
        if "loss" in values:
            m.train_loss.set(float(values["loss"]))
        if "learning_rate" in values:
            m.learning_rate.set(float(values["learning_rate"]))
        if "samples_per_second" in values:
            m.samples_per_second.set(float(values["samples_per_second"]))
        if "tokens_per_second" in values:
            m.tokens_per_second.set(float(values["tokens_per_second"]))
        for key, value in values.items():
            if not key.startswith("eval_") or not isinstance(value, int | float) or math.isnan(float(value)):
                continue
            name = key[len("eval_") :]
            if name == "loss":
                m.eval_loss.set(float(value))
            elif name not in ("runtime", "samples_per_second", "steps_per_second", "epoch"):
                m.eval_metric.labels(metric=name).set(float(value))
        if state.best_metric is not None:
            m.best_metric.set(float(state.best_metric))
