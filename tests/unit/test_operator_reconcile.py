"""The reconcile decisions, pass by pass, as the controller would see them (pure: no cluster)."""

from __future__ import annotations

import datetime

import pytest

from finetune_operator import conditions as cond
from finetune_operator.job.assembly import invalid_spec_status
from finetune_operator.job.backoff import restart_delay_seconds
from finetune_operator.job.jobview import JobView
from finetune_operator.job.plan import (
    CreateConfigMap,
    CreateJob,
    CreateService,
    DeleteConfigMap,
    DeleteFineTuneJob,
    DeleteJob,
    Observed,
)
from finetune_operator.job.reconcile import decide
from finetune_operator.job.status import stalled_condition
from finetune_operator.settings import Settings
from tests.plugins.operator_objects import job_obj, pod_obj, true

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
SETTINGS = Settings(restart_backoff_max_seconds=300)
SPEC = {
    "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/out"},
    "storage": {"secretRef": {"name": "s3"}},
    "resources": {"workers": 2, "gpusPerWorker": 8},
    "runPolicy": {"maxRestarts": 2, "backoffSeconds": 10},
}


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def view(status=None, run_policy=None, generation=1, resources=None) -> JobView:
    spec = {**SPEC, "runPolicy": {**SPEC["runPolicy"], **(run_policy or {})}}
    if resources is not None:
        spec["resources"] = resources
    return JobView.from_body(
        {
            "metadata": {"name": "reviews", "namespace": "ns", "uid": "u1", "generation": generation},
            "spec": spec,
            "status": status or {},
        }
    )


def observed(jobs=(), pods=(), service=True):
    by_attempt = {}
    for pod in pods:
        by_attempt.setdefault(int(pod["metadata"]["labels"]["finetune.dev/attempt"]), []).append(pod)
    return Observed(
        service_exists=service,
        jobs={int(job["metadata"]["labels"]["finetune.dev/attempt"]): job for job in jobs},
        pods=by_attempt,
    )


def condition(status, kind):
    return cond.get(status["conditions"], kind)


def actions_of(decision, kind):
    return [action for action in decision.actions if isinstance(action, kind)]


def test_a_single_worker_job_gets_no_service():
    decision = decide(view(resources={"workers": 1}), observed(service=False), T0, SETTINGS)
    assert [type(action) for action in decision.actions] == [CreateConfigMap, CreateJob]


def test_new_job_gets_service_and_attempt_1():
    decision = decide(view(), observed(service=False), T0, SETTINGS)
    assert [type(action) for action in decision.actions] == [CreateService, CreateConfigMap, CreateJob]
    assert actions_of(decision, CreateJob)[0].manifest["metadata"]["name"] == "reviews-a1"
    status = decision.status
    assert (status["attempt"], status["phase"], status["startTime"]) == (1, "Pending", stamp(0))
    assert condition(status, cond.CREATED)["status"] == "True"
    assert status["restarts"] == {"total": 0, "preemptions": 0, "failures": 0}
    # Created=True and the attempt's own Event say the same: one Event (one POST) per reason and pass
    assert [event.reason for event in decision.events] == ["AttemptCreated"]


def step(status, obs, now, **kwargs):
    """One pass with the status of the previous one, as the controller chains them."""
    return decide(view(status, **kwargs), obs, now, SETTINGS)


def running_status():
    first = step({}, observed(), at(0))
    return step(first.status, observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]), at(5)).status


def test_all_pods_running_sets_running_and_keeps_transition_time():
    status = running_status()
    assert status["phase"] == "Running"
    assert condition(status, cond.RUNNING)["lastTransitionTime"] == stamp(5)
    again = step(status, observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]), at(60))
    assert condition(again.status, cond.RUNNING)["lastTransitionTime"] == stamp(5)
    assert again.actions == [] and again.events == []


def failed_attempt(attempt, seconds):
    failed = true("Failed", reason="BackoffLimitExceeded", lastTransitionTime=stamp(seconds))
    return job_obj(attempt, [failed]), [pod_obj(attempt, 0, "Failed", 1, "NCCL timeout")]


def test_retryable_failure_counts_waits_for_backoff_then_replaces_the_gang():
    job1, pods1 = failed_attempt(1, 100)
    first = step(running_status(), observed([job1], pods1), at(101))
    status = first.status
    assert status["attempt"] == 2
    assert status["restarts"] == {"total": 1, "preemptions": 0, "failures": 1}
    assert condition(status, cond.RESTARTING)["reason"] == "WorkerFailed"
    assert "NCCL timeout" in condition(status, cond.RESTARTING)["message"]
    assert status["phase"] == "Restarting"
    assert first.actions == [] and first.requeue_after == 10
    assert first.restart_kind == "failure"
    assert any(event.type == "Warning" and event.reason == "WorkerFailed" for event in first.events)

    # The same observation again (operator restarted, or a resync) accounts nothing twice.
    waiting = step(status, observed([job1], pods1), at(105))
    assert waiting.status["restarts"]["failures"] == 1 and waiting.actions == []
    assert waiting.requeue_after == pytest.approx(5)

    after = step(status, observed([job1], pods1), at(111))
    assert [(type(a), a.name) for a in after.actions] == [(DeleteJob, "reviews-a1")]

    still_deleting = step(status, observed([], pods1), at(112))
    assert actions_of(still_deleting, CreateJob) == []  # never two attempts at once

    gone = step(status, observed(), at(113))
    assert [a.attempt for a in actions_of(gone, CreateJob)] == [2]
    assert gone.status["restarts"]["failures"] == 1

    running = step(gone.status, observed([job_obj(2)], [pod_obj(2, 0), pod_obj(2, 1)]), at(120))
    assert condition(running.status, cond.RESTARTING)["status"] == "False"
    assert condition(running.status, cond.RUNNING)["status"] == "True"


def test_failures_beyond_max_restarts_fail_the_job_with_the_count():
    status = {**running_status(), "attempt": 3, "restarts": {"total": 2, "preemptions": 0, "failures": 2}}
    job3, pods3 = failed_attempt(3, 200)
    decision = step(status, observed([job3], pods3), at(201))
    failed = condition(decision.status, cond.FAILED)
    assert (failed["status"], failed["reason"]) == ("True", "RestartLimitExceeded")
    assert "failed 3 times" in failed["message"] and "maxRestarts=2" in failed["message"]
    assert decision.status["phase"] == "Failed" and decision.status["completionTime"] == stamp(201)
    assert decision.completion == "failed"


def test_disruption_restarts_at_once_without_using_the_budget():
    disruption = {
        "type": "DisruptionTarget",
        "status": "True",
        "message": "preempted by a higher priority pod",
    }
    pods = [pod_obj(1, 0, conditions=[disruption], deleting=True), pod_obj(1, 1)]
    decision = step(running_status(), observed([job_obj(1)], pods), at(50))
    assert decision.status["restarts"] == {"total": 1, "preemptions": 1, "failures": 0}
    assert decision.status["attempt"] == 2
    assert condition(decision.status, cond.RESTARTING)["reason"] == "Disrupted"
    assert [(type(a), a.name) for a in decision.actions] == [(DeleteJob, "reviews-a1")]
    assert decision.restart_kind == "preemption"


def test_invalid_configuration_fails_at_once_with_the_termination_message():
    pods = [pod_obj(1, 0, "Failed", 78, "spec.dataset.labelField: column 'stars' not found"), pod_obj(1, 1)]
    decision = step(running_status(), observed([job_obj(1)], pods), at(30))
    failed = condition(decision.status, cond.FAILED)
    assert (failed["reason"], failed["message"]) == (
        "InvalidConfiguration",
        "spec.dataset.labelField: column 'stars' not found",
    )
    assert decision.status["restarts"]["failures"] == 0
    assert any(e.type == "Warning" and "column 'stars'" in e.message for e in decision.events)


def test_suspend_stops_the_attempt_and_unsuspend_starts_a_new_one():
    status = running_status()
    suspended = step(
        status, observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]), at(40), run_policy={"suspend": True}
    )
    assert [(type(a), a.name) for a in suspended.actions] == [(DeleteJob, "reviews-a1")]
    assert suspended.status["attempt"] == 2 and suspended.status["restarts"]["total"] == 0
    assert condition(suspended.status, cond.SUSPENDED)["status"] == "True"
    assert suspended.status["phase"] == "Suspended"

    idle = step(suspended.status, observed(), at(45), run_policy={"suspend": True})
    assert idle.actions == [] and "no workers run" in condition(idle.status, cond.SUSPENDED)["message"]

    resumed = step(idle.status, observed(), at(50))
    assert [a.attempt for a in actions_of(resumed, CreateJob)] == [2]
    assert condition(resumed.status, cond.SUSPENDED)["reason"] == "Resumed"
    assert resumed.status["restarts"]["total"] == 0


def test_suspended_before_start_creates_nothing():
    decision = step({}, observed(), at(0), run_policy={"suspend": True})
    assert actions_of(decision, CreateJob) == [] and decision.status["attempt"] == 0


def test_deadline_fails_the_job_and_deletes_the_running_attempt():
    status = running_status()
    before = step(
        status,
        observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]),
        at(50),
        run_policy={"activeDeadlineSeconds": 60},
    )
    assert before.requeue_after == pytest.approx(10)  # started at 0, deadline at 60
    decision = step(
        status,
        observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]),
        at(61),
        run_policy={"activeDeadlineSeconds": 60},
    )
    assert condition(decision.status, cond.FAILED)["reason"] == "DeadlineExceeded"
    assert [(type(a), a.name) for a in decision.actions] == [
        (DeleteConfigMap, "reviews-trainer-spec"),
        (DeleteJob, "reviews-a1"),
    ]


def test_ttl_deletes_the_finished_job():
    done = step(
        running_status(),
        observed([job_obj(1, [true("Complete")])]),
        at(100),
        run_policy={"ttlSecondsAfterFinished": 30},
    )
    assert done.status["phase"] == "Succeeded" and done.completion == "succeeded"
    waiting = step(
        done.status,
        observed([job_obj(1, [true("Complete")])]),
        at(110),
        run_policy={"ttlSecondsAfterFinished": 30},
    )
    assert waiting.actions == [] and waiting.requeue_after == pytest.approx(20)
    expired = step(
        done.status,
        observed([job_obj(1, [true("Complete")])]),
        at(130),
        run_policy={"ttlSecondsAfterFinished": 30},
    )
    assert [type(a) for a in expired.actions] == [DeleteFineTuneJob]


def test_operator_crash_after_create_before_status_write_adopts_the_job():
    # status still says attempt 1 was never created, but the Job exists: no duplicate, status catches up
    decision = step({}, observed([job_obj(1)], [pod_obj(1, 0), pod_obj(1, 1)]), at(5))
    assert actions_of(decision, CreateJob) == []
    assert decision.status["attempt"] == 1 and decision.status["phase"] == "Running"


def test_crash_after_accounting_before_delete_does_not_count_twice():
    job1, pods1 = failed_attempt(1, 100)
    accounted = step(running_status(), observed([job1], pods1), at(101)).status
    for now in (130, 131):  # the operator restarts twice; the failed attempt 1 is still there
        again = step(accounted, observed([job1], pods1), at(now))
        assert again.status["restarts"] == accounted["restarts"]
        assert [type(a) for a in again.actions] == [DeleteJob]


def test_unschedulable_says_so_with_the_scheduler_message():
    pending = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/4 nodes: Insufficient nvidia.com/gpu",
    }
    pods = [pod_obj(1, 0, "Pending", conditions=[pending])]
    decision = step(step({}, observed(), at(0)).status, observed([job_obj(1)], pods), at(3))
    running = condition(decision.status, cond.RUNNING)
    assert (running["status"], running["reason"]) == ("False", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in running["message"]
    assert [e.reason for e in decision.events] == ["Unschedulable"]


def test_kueue_suspended_child_shows_as_suspended():
    queued = job_obj(
        1, [true("Suspended", reason="JobSuspended", message="Job suspended")], spec={"suspend": True}
    )
    decision = step(step({}, observed(), at(0)).status, observed([queued]), at(1))
    suspended = condition(decision.status, cond.SUSPENDED)
    assert (suspended["status"], suspended["reason"]) == ("True", "JobSuspended")


def test_invalid_spec_fails_with_the_field_named():
    status, events = invalid_spec_status({}, 3, "spec.resources.workers: must be >= 1", T0)
    assert condition(status, cond.FAILED)["message"] == "spec.resources.workers: must be >= 1"
    assert status["observedGeneration"] == 3 and events[0].type == "Warning"


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0), (1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (60, 300)]
)
def test_backoff_doubles_and_is_capped(failures, expected):
    assert restart_delay_seconds(failures, 10, 300) == expected


@pytest.mark.parametrize(
    ("running", "step_no", "idle", "expected"),
    [(True, 10, 100, "False"), (True, 10, 900, "True"), (True, None, 900, None), (False, 10, 900, "False")],
)
def test_stalled_rule(running, step_no, idle, expected):
    desired = stalled_condition(running, step_no, T0 - datetime.timedelta(seconds=idle), T0, 900)
    assert (desired.status if desired else None) == expected


def test_merge_conditions_changes_transition_time_only_on_status_change():
    first, transitions = cond.merge_conditions([], [cond.Desired("Running", "True", "A", "x")], stamp(0), 1)
    second, again = cond.merge_conditions(first, [cond.Desired("Running", "True", "B", "y")], stamp(9), 2)
    assert [t.type for t in transitions] == ["Running"] and again == []
    assert second[0]["lastTransitionTime"] == stamp(0) and second[0]["reason"] == "B"
    assert second[0]["observedGeneration"] == 2
