"""examples/nightly-schedule.yaml parses with the models and expands into a valid FineTuneJob."""

from datetime import UTC, datetime
from pathlib import Path

import yaml

from finetune_api import parse_spec
from finetune_api.schedule import FineTuneSchedule
from finetune_operator.schedule.plan import plan_pass

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nightly-schedule.yaml"


def test_example_parses_and_says_when_to_use_it():
    schedule = FineTuneSchedule.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert (schedule.spec.schedule, schedule.spec.time_zone) == ("0 2 * * *", "Europe/Berlin")
    header = EXAMPLE.read_text().split("apiVersion:", 1)[0]
    assert header.startswith(f"# {EXAMPLE.name}") and "Use it" in header


def test_example_run_of_a_summer_night():
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].update(namespace="ml", uid="uid-1", creationTimestamp="2026-06-30T00:00:00Z")
    plan = plan_pass(body, [], datetime(2026, 7, 1, 0, 0, 30, tzinfo=UTC))  # 02:00:30 in Berlin (CEST)
    run = plan.create
    assert run["metadata"]["name"] == "nightly-reviews-" + str(
        int(datetime(2026, 7, 1, tzinfo=UTC).timestamp()) // 60
    )
    assert run["metadata"]["annotations"]["finetune.dev/data-date"] == "2026-07-01"
    spec = parse_spec(run["spec"])
    assert spec.dataset.train == "s3://finetune/data/reviews/2026-07-01/train.jsonl"
    assert spec.output.uri == "s3://finetune/outputs/reviews/2026/07/01"
    assert spec.checkpoint.uri == f"s3://finetune/checkpoints/{run['metadata']['name']}"
