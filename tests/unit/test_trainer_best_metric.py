"""The best-metric gauge is current right after each evaluation.

HF's Trainer records `state.best_metric` only after the `on_evaluate` callbacks ran, so a gauge set
from the state there lagged one evaluation behind (a sweep's `bestMetric` and the operator's
`status.progress.bestMetric` with it). The bridge applies HF's own rule in `on_evaluate`; these
tests drive it with real TrainingArguments, TrainerState and metrics registry and check it against
HF's `Trainer._determine_best_metric` run afterwards on the same state.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

from finetune_trainer.callback import TrainerBridge, best_metric_after
from finetune_trainer.distributed import Control, StopFlag, WorldInfo
from finetune_trainer.metrics_server import TrainerMetrics
from finetune_trainer.settings import CheckpointSettings

WORLD = WorldInfo(rank=0, local_rank=0, world_size=1)


def arguments(tmp_path, metric: str, greater_is_better: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path),
        metric_for_best_model=metric,
        greater_is_better=greater_is_better,
        report_to="none",
        use_cpu=True,
    )


def bridge(metrics: TrainerMetrics) -> TrainerBridge:
    return TrainerBridge(
        WORLD,
        Control(WORLD),
        StopFlag(),
        CheckpointSettings(uri="file:///unused", every_steps=0, every_seconds=None, keep=1),
        None,
        metrics,
        total_batch_size=8,
        task="sequence-classification",
    )


def gauge(metrics: TrainerMetrics) -> float:
    return metrics.best_metric._value.get()


@pytest.mark.parametrize(
    ("metric", "greater_is_better", "evaluations"),
    [
        ("loss", False, [0.9, 0.7, 0.8, 0.6, 0.65]),
        ("f1_macro", True, [0.4, 0.55, 0.5, 0.7, 0.69]),
    ],
)
def test_the_gauge_holds_the_best_including_this_evaluation(tmp_path, metric, greater_is_better, evaluations):
    args = arguments(tmp_path, metric, greater_is_better)
    state, control = TrainerState(), TrainerControl()
    metrics = TrainerMetrics()
    bridge_ = bridge(metrics)
    hf = SimpleNamespace(args=args, state=state)
    for step, value in enumerate(evaluations, start=1):
        state.global_step = step
        evaluation = {f"eval_{metric}": value, "eval_runtime": 0.1}
        bridge_.on_evaluate(args, state, control, metrics=evaluation)
        seen = gauge(metrics)
        Trainer._determine_best_metric(hf, metrics=evaluation, trial=None)  # what HF does next
        assert seen == state.best_metric
        expected = (max if greater_is_better else min)(evaluations[:step])
        assert seen == expected


def test_without_a_metric_for_best_model_nothing_changes(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert best_metric_after(None, {"eval_loss": 0.3}, args) is None
    assert best_metric_after(0.5, {"eval_loss": 0.3}, args) == 0.5


def test_a_nan_evaluation_keeps_the_previous_best(tmp_path):
    args = arguments(tmp_path, "loss", False)
    assert best_metric_after(0.5, {"eval_loss": float("nan")}, args) == 0.5
    assert best_metric_after(0.5, {}, args) == 0.5
