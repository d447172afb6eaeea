"""The operator's shared-cluster policies (job/policy.py) and how a refusal ends a job (issue 13)."""

from __future__ import annotations

import datetime

import pytest

from finetune_operator import conditions as cond
from finetune_operator.job.jobview import JobView
from finetune_operator.job.plan import CreateConfigMap, CreateJob, Observed
from finetune_operator.job.policy import (
    check_image,
    check_priority_class,
    check_storage,
    check_tolerations,
    image_matches,
    image_repository,
    permanent_rejection,
)
from finetune_operator.job.reconcile import decide
from finetune_operator.settings import DEFAULT_IMAGE, Settings, parse_settings

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
SPEC = {
    "model": {"uri": "s3://bucket/team-a/models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "s3://bucket/team-a/data/train.jsonl"},
    "output": {"uri": "s3://bucket/team-a/out"},
    "storage": {"secretRef": {"name": "s3"}},
}


def view(spec=None, namespace="team-a", settings: Settings | None = None) -> JobView:
    return JobView.from_body(
        {
            "metadata": {"name": "reviews", "namespace": namespace, "uid": "u1", "generation": 1},
            "spec": spec or SPEC,
        },
        default_checkpoint_uri=(settings or Settings()).default_checkpoint_uri,
    )


def failed(decision):
    return cond.get(decision.status["conditions"], cond.FAILED)


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("ghcr.io/org/trainer:1.0", "ghcr.io/org/trainer"),
        ("registry:5000/trainer", "registry:5000/trainer"),
        ("registry:5000/trainer:2", "registry:5000/trainer"),
        ("ghcr.io/org/trainer@sha256:abc", "ghcr.io/org/trainer"),
        ("trainer", "trainer"),
    ],
)
def test_image_repository(image, repository):
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    ("image", "pattern", "allowed"),
    [
        ("ghcr.io/org/trainer:1", "ghcr.io/org/trainer", True),
        ("ghcr.io/org/trainer@sha256:abc", "ghcr.io/org/trainer", True),
        ("ghcr.io/org/trainer", "ghcr.io/org/trainer", True),
        ("ghcr.io/org/trainer-evil:1", "ghcr.io/org/trainer", False),
        ("ghcr.io/org/sub/x:1", "ghcr.io/org/", True),
        ("ghcr.io/org/sub/x:1", "ghcr.io/org", True),
        ("ghcr.io/orgx/x:1", "ghcr.io/org", False),
        ("registry.example/team-a/trainer:1", "registry.example/*/trainer:*", True),
        ("registry.example/team-a/other:1", "registry.example/*/trainer:*", False),
        ("anything:1", "*", True),
    ],
)
def test_image_patterns_are_globs_or_prefixes_at_a_boundary(image, pattern, allowed):
    assert image_matches(image, pattern) is allowed


def test_default_policy_is_the_default_images_repository():
    assert check_image(DEFAULT_IMAGE, (), DEFAULT_IMAGE) is None
    assert check_image("ghcr.io/finetune-operator/finetune-trainer:0.2.0", (), DEFAULT_IMAGE) is None
    refusal = check_image("docker.io/evil/miner:1", (), DEFAULT_IMAGE)
    assert refusal is not None and refusal.reason == "ImageNotAllowed"
    assert "docker.io/evil/miner:1" in refusal.message
    assert "ghcr.io/finetune-operator/finetune-trainer" in refusal.message


def test_the_default_image_is_allowed_whatever_the_list():
    assert check_image("my/default:1", ("other/*",), "my/default:1") is None


def test_storage_prefix_is_per_namespace():
    templates = ("s3://bucket/{namespace}/",)
    assert check_storage(SPEC, "team-a", templates) is None
    refusal = check_storage(SPEC, "team-b", templates)
    assert refusal is not None and refusal.reason == "StorageNotAllowed"
    assert "spec.model.uri" in refusal.message and "s3://bucket/team-b/" in refusal.message


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/team-ab/out",  # a sibling prefix, not below team-a/
        "s3://bucket/team-a/../team-b/out",  # escapes once normalised
        "s3://other/team-a/out",
        "gs://bucket/team-a/out",
    ],
)
def test_storage_prefix_refuses_uris_outside_it(uri):
    spec = {**SPEC, "output": {"uri": uri}}
    refusal = check_storage(spec, "team-a", ("s3://bucket/{namespace}",))
    assert refusal is not None and "spec.output.uri" in refusal.message


def test_storage_policy_ignores_hub_file_and_pvc_uris_and_is_off_without_prefixes():
    spec = {**SPEC, "model": {**SPEC["model"], "uri": "hf://org/model"}, "output": {"uri": "pvc://claim/x"}}
    assert check_storage(spec, "team-a", ("s3://bucket/{namespace}/",)) is None
    assert check_storage({**SPEC, "output": {"uri": "s3://x/y"}}, "team-a", ()) is None


def test_priority_classes_and_blanket_tolerations():
    assert check_priority_class("high", ("*",)) is None
    assert check_priority_class(None, ()) is None
    refusal = check_priority_class("system-cluster-critical", ("training-*",))
    assert refusal is not None and refusal.reason == "PriorityClassNotAllowed"
    assert "system-cluster-critical" in refusal.message
    blanket = [{"key": "a", "operator": "Exists"}, {"operator": "Exists"}]
    refusal = check_tolerations(blanket, allow_blanket=False)
    assert refusal is not None and "tolerations[1]" in refusal.message
    assert check_tolerations(blanket, allow_blanket=True) is None
    assert check_tolerations(blanket[:1], allow_blanket=False) is None


@pytest.mark.parametrize(
    ("status", "message", "permanent"),
    [
        (422, "Job.batch is invalid: metadata.name: must be no more than 63 characters", True),
        (400, "bad request", True),
        (403, "denied by ValidatingAdmissionPolicy", True),
        (403, 'jobs.batch "x" is forbidden: exceeded quota: q, requested: count/jobs.batch=1', False),
        (409, "already exists", False),
        (429, "too many requests", False),
        (500, "internal", False),
        (None, "connection reset", False),
    ],
)
def test_permanent_rejections(status, message, permanent):
    assert permanent_rejection(status, message) is permanent


@pytest.mark.parametrize(
    ("settings", "spec", "reason"),
    [
        (Settings(), {**SPEC, "image": "docker.io/evil/miner:1"}, "ImageNotAllowed"),
        (Settings(storage_prefixes=("s3://bucket/{namespace}/",)), SPEC, None),
        (
            Settings(storage_prefixes=("s3://bucket/{namespace}/",), default_checkpoint_uri="s3://shared"),
            SPEC,
            "StorageNotAllowed",  # the operator's default checkpoint prefix is checked too
        ),
        (
            Settings(allowed_priority_classes=("batch",)),
            {**SPEC, "resources": {"priorityClassName": "critical"}},
            "PriorityClassNotAllowed",
        ),
        (
            Settings(),
            {**SPEC, "resources": {"tolerations": [{"operator": "Exists"}]}},
            "TolerationNotAllowed",
        ),
    ],
)
def test_a_refused_job_ends_failed_without_creating_an_attempt(settings, spec, reason):
    decision = decide(view(spec, settings=settings), Observed(service_exists=True), T0, settings)
    if reason is None:
        assert [type(a) for a in decision.actions] == [CreateConfigMap, CreateJob]
        return
    assert failed(decision)["status"] == "True" and failed(decision)["reason"] == reason
    assert decision.status["phase"] == "Failed"
    assert not [a for a in decision.actions if isinstance(a, CreateJob)]
    assert reason in [event.reason for event in decision.events]


def test_a_child_the_api_refused_ends_the_job_failed_with_the_apis_message():
    message = "the API server refused to create Job reviews-a1: spec.template: denied"
    decision = decide(view(), Observed(service_exists=True, child_rejected=message), T0, Settings())
    assert failed(decision)["reason"] == "ChildRejected"
    assert failed(decision)["message"] == message
    assert not [a for a in decision.actions if isinstance(a, CreateJob)]


def test_policy_flags_and_environment():
    settings = parse_settings(
        [
            "--allowed-images",
            "a/*,b/",
            "--allowed-images",
            "c",
            "--storage-prefix",
            "s3://b/{namespace}/",
            "--allowed-priority-classes",
            "batch",
            "--allow-blanket-tolerations",
        ],
        env={},
    )
    assert settings.allowed_images == ("a/*", "b/", "c")
    assert settings.storage_prefixes == ("s3://b/{namespace}/",)
    assert settings.allowed_priority_classes == ("batch",)
    assert settings.allow_blanket_tolerations is True
    from_env = parse_settings(
        [],
        env={
            "FINETUNE_ALLOWED_IMAGES": "x/,y/",
            "FINETUNE_STORAGE_PREFIXES": "s3://b/{namespace}/",
            "FINETUNE_ALLOWED_PRIORITY_CLASSES": "",
            "FINETUNE_ALLOW_BLANKET_TOLERATIONS": "true",
        },
    )
    assert from_env.allowed_images == ("x/", "y/")
    assert from_env.allowed_priority_classes == ()
    assert from_env.allow_blanket_tolerations is True
    defaults = parse_settings([], env={})
    assert (defaults.allowed_images, defaults.allowed_priority_classes) == ((), ("*",))
    assert defaults.allow_blanket_tolerations is False
