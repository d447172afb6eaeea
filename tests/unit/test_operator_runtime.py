"""Settings parsing, JSON logs, the work queue and the metrics registry."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client import generate_latest

from finetune_operator.logs import JsonFormatter
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.settings import Settings, parse_settings
from finetune_operator.workqueue import WorkQueue


def test_settings_defaults_bind_loopback_and_watch_everything():
    settings = parse_settings([], env={})
    assert settings.all_namespaces and settings.metrics_bind_address == "127.0.0.1"
    assert not settings.standalone and settings.peering_name == "finetune-operator"


def test_flags_win_over_env():
    env = {"FINETUNE_NAMESPACES": "a, b", "FINETUNE_LOG_LEVEL": "debug", "FINETUNE_RESYNC_SECONDS": "5"}
    assert parse_settings([], env=env).namespaces == ("a", "b")
    settings = parse_settings(["-n", "c", "-n", "c", "--resync-seconds", "2", "--standalone"], env=env)
    assert settings.namespaces == ("c",) and settings.resync_seconds == 2 and settings.standalone
    assert settings.log_level == "DEBUG"
    assert parse_settings(["--all-namespaces"], env=env).namespaces == ()


def test_bad_values_name_the_flag():
    with pytest.raises(ValueError, match="--restart-backoff-max-seconds"):
        parse_settings(["--restart-backoff-max-seconds", "-1"], env={})
    with pytest.raises(ValueError, match="--reconcile-workers"):
        parse_settings(["--reconcile-workers", "0"], env={})
    with pytest.raises(SystemExit):  # the concurrency flag's old name and the dead backoff-base flag
        parse_settings(["--workers", "2"], env={})
    with pytest.raises(SystemExit):
        parse_settings(["--restart-backoff-seconds", "5"], env={})
    with pytest.raises(SystemExit):
        parse_settings(["--log-level", "chatty"], env={})


def test_json_log_line_carries_job_context():
    record = logging.LogRecord(
        "finetune_operator", logging.INFO, __file__, 1, "attempt %d created", (2,), None
    )
    record.namespace, record.job = "ns", "reviews"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "attempt 2 created" and entry["job"] == "reviews" and entry["level"] == "INFO"


def test_work_queue_deduplicates_and_never_hands_out_a_key_twice_at_once():
    async def scenario():
        queue = WorkQueue()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        first = await queue.get()
        queue.add(first)  # changed while processing: comes back once done, not in parallel
        second = await queue.get()
        assert (first, second, len(queue)) == ("a", "b", 0)
        queue.done(first)
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.add_after("c", 0)
        assert await asyncio.wait_for(queue.get(), 1) == "c"
        queue.close()

    asyncio.run(scenario())


def test_metrics_count_jobs_by_condition():
    metrics = OperatorMetrics()
    metrics.set_job_conditions(("ns", "a"), ["Created", "Running"])
    metrics.set_job_conditions(("ns", "b"), ["Created"])
    metrics.forget_job(("ns", "a"))
    metrics.restarts_total.labels(kind="preemption").inc()
    text = generate_latest(metrics.registry).decode()
    assert 'finetune_operator_jobs{condition="Created"} 1.0' in text
    assert 'finetune_operator_jobs{condition="Running"} 0.0' in text
    assert 'finetune_operator_restarts_total{kind="preemption"} 1.0' in text
    assert "finetune_operator_reconcile_duration_seconds_bucket" in text


def test_command_line_defaults_are_the_dataclass_defaults():
    assert parse_settings([], env={}) == Settings()
