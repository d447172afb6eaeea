"""Issue 13 items 5 and 7, the pure halves: NaN/Inf never reach a status, garbage is one failed
scrape, IPv6 pod IPs are bracketed, heartbeat-only status changes are recognised."""

import asyncio
import json
import math
from datetime import UTC, datetime

from finetune_operator.job.progress.poller import ProgressPoller, metrics_url
from finetune_operator.job.progress.scrape import parse_trainer_metrics, progress_fields
from finetune_operator.job.progress.status import drop_non_finite, progress_only_change

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DIVERGED = """\
finetune_trainer_step 40
finetune_trainer_total_steps 100
finetune_trainer_train_loss NaN
finetune_trainer_eval_loss +Inf
finetune_trainer_learning_rate 5.0
finetune_trainer_eval_metric{metric="f1"} NaN
"""


def test_non_finite_series_are_dropped_and_named() -> None:
    sample = parse_trainer_metrics(DIVERGED)
    assert sample.step == 40 and sample.learning_rate == 5.0
    assert sample.train_loss is None and sample.eval_loss is None and sample.eval_metrics == ()
    assert sample.non_finite == ("eval_loss", "eval_metric{f1}", "train_loss")
    fields = progress_fields(sample, None, T0)
    json.dumps(fields, allow_nan=False)  # what the API server would refuse never gets this far


def test_drop_non_finite_cleans_a_status_at_any_depth() -> None:
    status = {"phase": "Running", "progress": {"trainLoss": math.nan, "step": 3, "x": [1.0, math.inf]}}
    cleaned = drop_non_finite(status)
    assert cleaned == {"phase": "Running", "progress": {"step": 3, "x": [1.0]}}
    json.dumps(cleaned, allow_nan=False)


def test_a_body_that_does_not_parse_is_one_failed_scrape() -> None:
    async def garbage(url: str, timeout_seconds: float) -> str:
        return "finetune_trainer_step {{{{ not prometheus\n"

    poller = ProgressPoller(interval_seconds=5, max_backoff_seconds=60, fetch=garbage)
    state = asyncio.run(poller.refresh(("ns", "job"), metrics_url("127.0.1.5", 9090), T0))
    assert state.failures == 1 and state.sample is None and state.last_error


def test_ipv6_pod_ips_are_bracketed() -> None:
    assert metrics_url("fd00::5", 9090) == "http://[fd00::5]:9090/metrics"
    assert metrics_url("127.0.1.5", 9090) == "http://127.0.1.5:9090/metrics"


def test_progress_only_changes_are_told_apart() -> None:
    running = {"phase": "Running", "progress": {"step": 1}}
    assert progress_only_change(running, {"phase": "Running", "progress": {"step": 2}})
    assert not progress_only_change(running, {"phase": "Succeeded", "progress": {"step": 2}})
    assert not progress_only_change(running, dict(running))
