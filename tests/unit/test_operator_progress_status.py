"""status.progress / status.checkpoint precedence, the completion summary, events and per-job gauges."""

import json

import pytest

from finetune_operator.job.progress.status import (
    checkpoint_event,
    completion_summary,
    final_metric_text,
    merged_checkpoint,
    merged_progress,
)
from finetune_operator.metrics import OperatorMetrics, job_gauge_values


def pod(index: int, exit_code: int | None, message: str = "") -> dict:
    terminated = {"exitCode": exit_code, "message": message} if exit_code is not None else None
    state = {"terminated": terminated} if terminated else {"running": {}}
    return {
        "metadata": {"annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
        "status": {"containerStatuses": [{"name": "trainer", "state": state}]},
    }


SUMMARY = {
    "step": 68,
    "totalSteps": 68,
    "trainLoss": 0.2,
    "bestMetric": 0.9,
    "metrics": {"eval_f1_macro": 0.91},
}


def test_completion_summary_comes_from_rank0_on_success_only() -> None:
    assert completion_summary([pod(1, 0, "x"), pod(0, 0, json.dumps(SUMMARY))]) == SUMMARY
    assert completion_summary([pod(0, 1, json.dumps(SUMMARY))]) is None
    assert completion_summary([pod(0, 0, "not json")]) is None
    assert completion_summary([pod(0, None)]) is None


@pytest.mark.parametrize(
    ("previous", "scraped", "summary", "succeeded", "expected"),
    [
        (None, None, None, False, None),
        ({"step": 5, "trainLoss": 1.0}, None, None, False, {"step": 5, "trainLoss": 1.0}),
        ({"step": 5, "trainLoss": 1.0}, {"step": 9}, None, False, {"step": 9, "trainLoss": 1.0}),
        (
            {"step": 60, "totalSteps": 68, "percent": 88.2},
            None,
            SUMMARY,
            True,
            {
                "step": 68,
                "totalSteps": 68,
                "percent": 100.0,
                "etaSeconds": 0,
                "trainLoss": 0.2,
                "bestMetric": 0.9,
            },
        ),
        (
            {"step": 60, "totalSteps": 68},
            None,
            None,
            True,
            {"step": 68, "totalSteps": 68, "percent": 100.0, "etaSeconds": 0},
        ),
    ],
)
def test_merged_progress(previous, scraped, summary, succeeded, expected) -> None:
    assert merged_progress(previous, scraped, summary, succeeded) == expected


def test_merged_checkpoint_never_goes_back() -> None:
    newer = {"step": 20, "uri": "s3://b/c/checkpoint-20"}
    older = {"step": 10, "uri": "s3://b/c/checkpoint-10"}
    assert merged_checkpoint(newer, older) == newer
    assert merged_checkpoint(older, newer) == newer
    assert merged_checkpoint(older, None) == older
    assert merged_checkpoint(None, None) is None


def test_checkpoint_event_only_for_a_new_step_and_when_due() -> None:
    assert (
        checkpoint_event({"step": 10}, {"step": 20, "uri": "u"}, due=True)
        == "checkpoint at step 20 committed to u"
    )
    assert checkpoint_event({"step": 20}, {"step": 20, "uri": "u"}, due=True) is None
    assert checkpoint_event({"step": 10}, {"step": 20, "uri": "u"}, due=False) is None
    assert checkpoint_event(None, None, due=True) is None


def test_final_metric_text_names_the_metric() -> None:
    text = final_metric_text({"evalLoss": 0.3}, SUMMARY, "f1_macro")
    assert text == ", final f1_macro 0.91, best f1_macro 0.9, eval loss 0.3, 68 steps"
    assert final_metric_text(None, None, "loss") == ""


def test_per_job_gauges_follow_the_status_and_are_removed_when_unknown() -> None:
    status = {
        "progress": {"percent": 50.0, "step": 34, "trainLoss": 0.4, "bestMetric": 0.8, "etaSeconds": 30},
        "checkpoint": {"time": "2026-11-21T12:00:00Z"},
    }
    values = job_gauge_values(status)
    assert values["progress_ratio"] == 0.5 and values["checkpoint_timestamp_seconds"] == 1795262400.0
    metrics = OperatorMetrics()
    metrics.set_job_progress(("ns", "job"), status)
    sample = metrics.registry.get_sample_value
    assert sample("finetune_operator_job_step", {"namespace": "ns", "job": "job"}) == 34
    metrics.set_job_progress(("ns", "job"), {"progress": {"step": 35}})
    assert sample("finetune_operator_job_train_loss", {"namespace": "ns", "job": "job"}) is None
    metrics.forget_job(("ns", "job"))
    assert sample("finetune_operator_job_step", {"namespace": "ns", "job": "job"}) is None
