"""One reconcile pass of a FineTuneSchedule: concurrency policies, history limits, suspend, restarts."""

from datetime import datetime

import pytest

from finetune_operator.schedule.children import children_of, history_to_delete
from finetune_operator.schedule.plan import plan_pass

UID = "uid-nightly"
TEMPLATE_SPEC = {
    "model": {"uri": "file:///models/minilm", "task": "sequence-classification", "numLabels": 3},
    "dataset": {"train": "file:///data/${scheduledDate}/train.jsonl"},
    "output": {"uri": "file:///out/${jobName}"},
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def schedule(status=None, **spec) -> dict:
    body_spec = {
        "schedule": "0 2 * * *",
        "timeZone": "UTC",
        "concurrencyPolicy": "Allow",
        "suspend": False,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {"metadata": {"labels": {"team": "search"}}, "spec": TEMPLATE_SPEC},
    }
    body_spec.update(spec)
    return {
        "apiVersion": "finetune.dev/v1alpha1",
        "kind": "FineTuneSchedule",
        "metadata": {
            "name": "nightly",
            "namespace": "ml",
            "uid": UID,
            "generation": 1,
            "creationTimestamp": "2026-03-01T00:00:00Z",
        },
        "spec": body_spec,
        "status": status or {},
    }


def job(scheduled: str, phase: str | None = None, *, owner: str = UID, deleting: bool = False) -> dict:
    minutes = int(at(scheduled).timestamp()) // 60
    metadata = {
        "name": f"nightly-{minutes}",
        "namespace": "ml",
        "uid": f"uid-{minutes}",
        "creationTimestamp": scheduled,
        "labels": {"finetune.dev/schedule": "nightly"},
        "annotations": {"finetune.dev/scheduled-time": scheduled},
        "ownerReferences": [
            {"uid": owner, "controller": True, "kind": "FineTuneSchedule", "name": "nightly"}
        ],
    }
    if deleting:
        metadata["deletionTimestamp"] = scheduled
    status = {"phase": phase} if phase else {}
    if phase in ("Succeeded", "Failed"):
        status["completionTime"] = scheduled.replace("T02:", "T03:")
    return {"metadata": metadata, "spec": TEMPLATE_SPEC, "status": status}


def reasons(plan) -> list[str]:
    return [event.reason for event in plan.events]


def test_first_run_at_the_scheduled_time():
    plan = plan_pass(schedule(), [], at("2026-03-01T02:00:05Z"))
    child = plan.create
    assert child["metadata"]["name"] == f"nightly-{int(at('2026-03-01T02:00Z').timestamp()) // 60}"
    assert child["metadata"]["labels"] == {"team": "search", "finetune.dev/schedule": "nightly"}
    assert child["metadata"]["annotations"] == {"finetune.dev/scheduled-time": "2026-03-01T02:00:00Z"}
    assert child["metadata"]["ownerReferences"][0]["uid"] == UID
    assert child["metadata"]["ownerReferences"][0]["controller"] is True
    assert child["spec"]["dataset"]["train"] == "file:///data/2026-03-01/train.jsonl"
    assert child["spec"]["output"]["uri"] == f"file:///out/{child['metadata']['name']}"
    assert plan.status["lastScheduleTime"] == "2026-03-01T02:00:00Z"
    assert plan.status["nextScheduleTime"] == "2026-03-02T02:00:00Z"
    assert reasons(plan) == ["SuccessfulCreate"]


def test_nothing_before_the_scheduled_time():
    plan = plan_pass(schedule(), [], at("2026-03-01T01:59:59Z"))
    assert plan.create is None and plan.delete == [] and plan.events == []
    assert plan.status["conditions"][0]["status"] == "True"
    assert plan.status["nextScheduleTime"] == "2026-03-01T02:00:00Z"


def test_placeholders_use_the_schedules_time_zone():
    plan = plan_pass(schedule(schedule="30 0 * * *", timeZone="Asia/Tokyo"), [], at("2026-03-01T15:30:10Z"))
    assert plan.create["spec"]["dataset"]["train"] == "file:///data/2026-03-02/train.jsonl"
    assert plan.create["metadata"]["annotations"]["finetune.dev/scheduled-time"] == "2026-03-01T15:30:00Z"


CONCURRENCY = [
    # (policy, creates, deletes the active run, event reasons)
    ("Allow", True, False, ["SuccessfulCreate"]),
    ("Forbid", False, False, ["JobAlreadyActive"]),
    ("Replace", True, True, ["SuccessfulDelete", "SuccessfulCreate"]),
]


@pytest.mark.parametrize(("policy", "creates", "deletes", "events"), CONCURRENCY)
def test_concurrency_policy_with_an_active_run(policy, creates, deletes, events):
    running = job("2026-03-01T02:00:00Z", "Running")
    status = {"lastScheduleTime": "2026-03-01T02:00:00Z"}
    plan = plan_pass(schedule(status, concurrencyPolicy=policy), [running], at("2026-03-02T02:00:01Z"))
    assert (plan.create is not None) is creates
    assert [c.name for c in plan.delete] == ([running["metadata"]["name"]] if deletes else [])
    assert reasons(plan) == events
    assert plan.status["activeCount"] == (0 if deletes else 1)
    assert plan.status["lastScheduleTime"] == ("2026-03-02T02:00:00Z" if creates else "2026-03-01T02:00:00Z")


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_finished_runs_do_not_block(policy):
    done = job("2026-03-01T02:00:00Z", "Succeeded")
    plan = plan_pass(
        schedule({"lastScheduleTime": "2026-03-01T02:00:00Z"}, concurrencyPolicy=policy),
        [done],
        at("2026-03-02T02:00:01Z"),
    )
    assert plan.create is not None and plan.delete == []
    assert plan.status["lastSuccessfulTime"] == "2026-03-01T03:00:00Z"


def test_forbid_starts_the_skipped_run_late_once_the_active_one_finishes():
    # CronJob semantics: lastScheduleTime is not advanced by a skip, so the unmet time runs late
    # unless startingDeadlineSeconds says it is too late.
    done = job("2026-03-01T02:00:00Z", "Succeeded")
    status = {"lastScheduleTime": "2026-03-01T02:00:00Z"}
    late = at("2026-03-02T05:00:00Z")
    assert plan_pass(schedule(status, concurrencyPolicy="Forbid"), [done], late).create is not None
    too_late = plan_pass(
        schedule(status, concurrencyPolicy="Forbid", startingDeadlineSeconds=600), [done], late
    )
    assert too_late.create is None and reasons(too_late) == ["MissedSchedule"]


def test_operator_down_for_three_nights_catches_up_once():
    status = {"lastScheduleTime": "2026-03-01T02:00:00Z"}
    plan = plan_pass(schedule(status), [job("2026-03-01T02:00:00Z", "Succeeded")], at("2026-03-04T09:00:00Z"))
    assert plan.create["metadata"]["annotations"]["finetune.dev/scheduled-time"] == "2026-03-04T02:00:00Z"
    assert reasons(plan) == ["MissedSchedules", "SuccessfulCreate"]
    assert "2 earlier scheduled runs were missed" in plan.events[0].message


def test_restart_after_create_before_status_write_creates_nothing():
    # The run of 02:00 exists but status still names the night before.
    children = [job("2026-03-01T02:00:00Z", "Succeeded"), job("2026-03-02T02:00:00Z", "Running")]
    status = {"lastScheduleTime": "2026-03-01T02:00:00Z"}
    plan = plan_pass(schedule(status), children, at("2026-03-02T02:00:30Z"))
    assert plan.create is None
    assert plan.status["activeCount"] == 1


def test_same_pass_twice_is_idempotent():
    first = plan_pass(schedule(), [], at("2026-03-01T02:00:05Z"))
    created = {**first.create, "status": {"phase": "Pending"}}
    created["metadata"] = {
        **created["metadata"],
        "uid": "uid-new",
        "creationTimestamp": "2026-03-01T02:00:05Z",
    }
    second = plan_pass(schedule(first.status), [created], at("2026-03-01T02:00:10Z"))
    assert second.create is None and second.events == []


def test_suspend_creates_nothing_and_says_so():
    plan = plan_pass(schedule(suspend=True), [], at("2026-03-05T02:00:00Z"))
    assert plan.create is None
    ready = plan.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert plan.status["nextScheduleTime"] is None


def test_resume_after_suspend_runs_at_most_one_missed_run():
    status = {"lastScheduleTime": "2026-03-01T02:00:00Z"}
    plan = plan_pass(schedule(status), [], at("2026-03-05T02:30:00Z"))
    assert plan.create["metadata"]["annotations"]["finetune.dev/scheduled-time"] == "2026-03-05T02:00:00Z"


def test_children_of_another_owner_are_ignored():
    stranger = job("2026-03-01T02:00:00Z", "Running", owner="someone-else")
    plan = plan_pass(schedule(concurrencyPolicy="Forbid"), [stranger], at("2026-03-02T02:00:01Z"))
    assert plan.status["activeCount"] == 0
    assert plan.create is not None


def test_deleting_children_are_not_active():
    going = job("2026-03-01T02:00:00Z", "Running", deleting=True)
    plan = plan_pass(
        schedule({"lastScheduleTime": "2026-03-01T02:00:00Z"}, concurrencyPolicy="Forbid"),
        [going],
        at("2026-03-02T02:00:01Z"),
    )
    assert plan.create is not None and plan.status["activeCount"] == 0


def test_invalid_spec_sets_ready_false_and_creates_nothing():
    plan = plan_pass(schedule(schedule="0 0 31 2 *"), [], at("2026-03-05T02:00:00Z"))
    ready = plan.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.schedule: day-of-month field" in ready["message"]
    assert plan.create is None


def test_template_that_expands_into_an_invalid_spec():
    # Within the 2048 characters of a URI as written, beyond them once "%B" became "March" 500 times.
    spec = {**TEMPLATE_SPEC, "output": {"uri": "file:///out/${scheduledTime:" + "%B" * 500 + "}"}}
    plan = plan_pass(schedule(jobTemplate={"spec": spec}), [], at("2026-03-01T02:00:05Z"))
    assert plan.create is None
    ready = plan.status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTemplate")
    assert "spec.jobTemplate.spec.output.uri" in ready["message"]
    assert plan.status["lastScheduleTime"] is None


def test_ready_keeps_its_transition_time_while_unchanged():
    first = plan_pass(schedule(), [], at("2026-03-01T01:00:00Z"))
    second = plan_pass(schedule(first.status), [], at("2026-03-01T01:30:00Z"))
    assert second.status == first.status


HISTORY = [
    # (phases of the runs of nights 1..n, successful limit, failed limit, nights deleted)
    (["Succeeded"] * 5, 3, 1, [1, 2]),
    (["Succeeded"] * 3, 3, 1, []),
    (["Failed", "Succeeded", "Failed", "Failed"], 3, 1, [1, 3]),
    (["Failed", "Failed"], 3, 0, [1, 2]),
    (["Succeeded", "Running", "Succeeded"], 0, 1, [1, 3]),
    (["Running", "Running"], 0, 0, []),
]


@pytest.mark.parametrize(("phases", "successful", "failed", "deleted"), HISTORY)
def test_history_limits_delete_the_oldest_finished(phases, successful, failed, deleted):
    bodies = [job(f"2026-03-0{night}T02:00:00Z", phase) for night, phase in enumerate(phases, start=1)]
    children = children_of(bodies, "nightly", UID)
    doomed = history_to_delete(children, successful, failed)
    assert [c.scheduled_time.day for c in doomed] == deleted
    plan = plan_pass(
        schedule(
            {"lastScheduleTime": f"2026-03-0{len(phases)}T02:00:00Z"},
            successfulJobsHistoryLimit=successful,
            failedJobsHistoryLimit=failed,
        ),
        bodies,
        at(f"2026-03-0{len(phases)}T05:00:00Z"),
    )
    assert [c.scheduled_time.day for c in plan.delete] == deleted
