"""The attempt Job's own activeDeadlineSeconds: a backstop behind the operator's deadline rule."""

from finetune_operator.job.builders import DEADLINE_BACKSTOP_SECONDS, build_job
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings


def job_view(**run_policy: object) -> JobView:
    body = {
        "metadata": {"name": "reviews", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
            "dataset": {"train": "s3://data/train.jsonl"},
            "output": {"uri": "s3://models/out"},
            "storage": {"secretRef": {"name": "s3"}},
            "runPolicy": run_policy,
        },
    }
    return JobView.from_body(body)


def test_the_job_ends_itself_a_margin_after_the_jobs_deadline() -> None:
    manifest = build_job(job_view(activeDeadlineSeconds=600), 2, Settings())
    assert manifest["spec"]["activeDeadlineSeconds"] == 600 + DEADLINE_BACKSTOP_SECONDS


def test_no_deadline_no_backstop() -> None:
    assert "activeDeadlineSeconds" not in build_job(job_view(), 1, Settings())["spec"]
