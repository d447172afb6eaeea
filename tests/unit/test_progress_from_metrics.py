"""Operator side of docs/architecture.md, "Progress is pulled": trainer metrics text →
status.progress and status.checkpoint."""

from datetime import UTC, datetime, timedelta

import pytest

from finetune_operator.job.progress.scrape import (
    ProgressPoint,
    TrainerSample,
    checkpoint_fields,
    eta_seconds,
    parse_trainer_metrics,
    percent_done,
    progress_fields,
    step_rate,
)

EXPOSITION = """\
# HELP finetune_trainer_step Optimizer steps completed (global step).
# TYPE finetune_trainer_step gauge
finetune_trainer_step 120.0
# TYPE finetune_trainer_total_steps gauge
finetune_trainer_total_steps 300.0
# TYPE finetune_trainer_epoch gauge
finetune_trainer_epoch 1.2
# TYPE finetune_trainer_train_loss gauge
finetune_trainer_train_loss 0.41
# TYPE finetune_trainer_eval_loss gauge
finetune_trainer_eval_loss 0.0
# TYPE finetune_trainer_eval_metric gauge
finetune_trainer_eval_metric{metric="f1_macro"} 0.8
finetune_trainer_eval_metric{metric="accuracy"} 0.85
# TYPE finetune_trainer_checkpoint_last_step gauge
finetune_trainer_checkpoint_last_step 100.0
# TYPE finetune_trainer_checkpoint_last_timestamp_seconds gauge
finetune_trainer_checkpoint_last_timestamp_seconds 1.7e9
# TYPE finetune_trainer_checkpoint_upload_bytes counter
finetune_trainer_checkpoint_upload_bytes_total 4096.0
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 10.0
"""

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_parse_reads_documented_series_and_treats_unset_losses_as_unknown() -> None:
    sample = parse_trainer_metrics(EXPOSITION)
    assert sample.step == 120
    assert sample.total_steps == 300
    assert sample.epoch == pytest.approx(1.2)
    assert sample.train_loss == pytest.approx(0.41)
    assert sample.eval_loss is None
    assert sample.eval_metrics == (("accuracy", 0.85), ("f1_macro", 0.8))
    assert sample.checkpoint_step == 100
    assert sample.checkpoint_time == datetime.fromtimestamp(1.7e9, UTC)


def test_no_checkpoint_until_one_is_committed() -> None:
    sample = parse_trainer_metrics("finetune_trainer_step 3\nfinetune_trainer_checkpoint_last_step 0\n")
    assert sample.checkpoint_step is None
    assert checkpoint_fields(sample, "s3://b/ckpt") is None


@pytest.mark.parametrize(
    ("step", "total", "expected"),
    [
        (None, 10, None),
        (5, None, None),
        (5, 0, None),
        (0, 10, 0.0),
        (5, 10, 50.0),
        (12, 10, 100.0),
        (1, 3, 33.3),
    ],
)
def test_percent_done(step: int | None, total: int | None, expected: float | None) -> None:
    assert percent_done(step, total) == expected


@pytest.mark.parametrize(
    ("step", "total", "rate", "expected"),
    [
        (10, 100, None, None),
        (10, 100, 0.0, None),
        (10, 100, 2.0, 45),
        (100, 100, 2.0, 0),
        (None, 100, 1.0, None),
    ],
)
def test_eta_seconds(step: int | None, total: int | None, rate: float | None, expected: int | None) -> None:
    assert eta_seconds(step, total, rate) == expected


def test_step_rate_measures_then_smooths_and_resets_when_step_goes_back() -> None:
    assert step_rate(None, 10, NOW) is None
    first = step_rate(ProgressPoint(step=10, time=NOW), 20, NOW + timedelta(seconds=5))
    assert first == pytest.approx(2.0)
    smoothed = step_rate(ProgressPoint(10, NOW, 2.0), 30, NOW + timedelta(seconds=5))
    assert smoothed == pytest.approx(0.3 * 4.0 + 0.7 * 2.0)
    assert step_rate(ProgressPoint(50, NOW, 2.0), 40, NOW + timedelta(seconds=5)) is None
    assert step_rate(ProgressPoint(10, NOW, 2.0), 10, NOW) == 2.0


def test_progress_and_checkpoint_fields_are_camel_case_and_omit_unknowns() -> None:
    sample = TrainerSample(
        step=150, total_steps=300, epoch=1.5, train_loss=0.5, checkpoint_step=100, checkpoint_time=NOW
    )
    fields = progress_fields(sample, rate=1.5, now=NOW)
    assert fields == {
        "step": 150,
        "totalSteps": 300,
        "epoch": 1.5,
        "percent": 50.0,
        "etaSeconds": 100,
        "trainLoss": 0.5,
        "updateTime": "2026-11-21T12:00:00Z",
    }
    assert checkpoint_fields(sample, "s3://b/ckpt/") == {
        "uri": "s3://b/ckpt/checkpoint-100",
        "step": 100,
        "time": "2026-11-21T12:00:00Z",
    }
