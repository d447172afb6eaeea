"""The metrics contract end to end: what the trainer really serves is what the operator reads.

The trainer's own `TrainerMetrics` is set (every series, as the training callback sets them), served
over HTTP on loopback, fetched from its `/metrics`, and fed to the operator's parser; every field of
the operator's `TrainerSample` must arrive with the value the trainer set. A rename on either side
(or in `finetune_api.contract`) that the other does not follow fails here.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from finetune_api import contract
from finetune_operator.job.progress.scrape import TrainerSample, checkpoint_fields, parse_trainer_metrics
from finetune_trainer.metrics_server import TrainerMetrics

CHECKPOINT_TIME = 1_790_000_000.0


@pytest.fixture(scope="module")
def served_text() -> str:
    metrics = TrainerMetrics()
    metrics.set_info({"trainer": "0.1.0", "torch": "2"}, "sequence-classification", "lora")
    metrics.step.set(120)
    metrics.total_steps.set(300)
    metrics.epoch.set(1.25)
    metrics.train_loss.set(0.41)
    metrics.eval_loss.set(0.38)
    metrics.eval_metric.labels(metric="f1_macro").set(0.8)
    metrics.eval_metric.labels(metric="accuracy").set(0.85)
    metrics.best_metric.set(0.81)
    metrics.learning_rate.set(1.5e-5)
    metrics.samples_per_second.set(310.5)
    metrics.tokens_per_second.set(40960.0)
    metrics.checkpoint_last_step.set(100)
    metrics.checkpoint_last_timestamp.set(CHECKPOINT_TIME)
    metrics.checkpoint_save_duration.set(0.5)
    metrics.checkpoint_upload_duration.set(2.0)
    metrics.checkpoint_upload_bytes.inc(4096)
    metrics.serve(port=0, address="127.0.0.1")
    return metrics.scrape()


def test_every_field_the_operator_reads_arrives(served_text: str) -> None:
    sample = parse_trainer_metrics(served_text)
    expected = TrainerSample(
        step=120,
        total_steps=300,
        epoch=1.25,
        train_loss=0.41,
        eval_loss=0.38,
        best_metric=0.81,
        learning_rate=1.5e-5,
        samples_per_second=310.5,
        tokens_per_second=40960.0,
        checkpoint_step=100,
        checkpoint_time=datetime.fromtimestamp(CHECKPOINT_TIME, UTC),
        eval_metrics=(("accuracy", 0.85), ("f1_macro", 0.8)),
    )
    assert sample == expected
    # non_finite names the series that were NaN/Inf: rightly empty here, every value is finite.
    reported = [f.name for f in dataclasses.fields(TrainerSample) if f.name != "non_finite"]
    unset = [name for name in reported if getattr(sample, name) in (None, ())]
    assert unset == [], f"the operator's parser did not receive {unset} from the trainer's /metrics"


def test_every_contract_series_is_served(served_text: str) -> None:
    """Each series the contract names is on the trainer's endpoint under the contract's prefix."""
    names = {
        getattr(contract, name)
        for name in dir(contract)
        if name.startswith("METRIC_") and name not in ("METRIC_PREFIX", "METRIC_EVAL_METRIC_LABEL")
    }
    exposed = {
        line.split("{")[0].split(" ")[0].removeprefix(contract.METRIC_PREFIX)
        for line in served_text.splitlines()
        if line.startswith(contract.METRIC_PREFIX)
    }
    counters = {contract.METRIC_CHECKPOINT_UPLOAD_BYTES}
    for name in names:
        wanted = f"{name}_total" if name in counters else name
        assert wanted in exposed, f"{contract.METRIC_PREFIX}{wanted} is not served by the trainer"


def test_checkpoint_uri_follows_the_trainer_layout(served_text: str) -> None:
    from finetune_trainer.manifest import checkpoint_dir_name, step_of_dir

    fields = checkpoint_fields(parse_trainer_metrics(served_text), "s3://bucket/ckpt/")
    assert fields is not None
    assert fields["uri"] == f"s3://bucket/ckpt/{checkpoint_dir_name(100)}"
    assert step_of_dir(str(fields["uri"])) == 100
