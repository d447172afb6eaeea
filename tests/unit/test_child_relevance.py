"""What queues a pass (issue 16): child fingerprints, echoes of our own requests, superseded timers,
scrapes between passes. Table-driven over the fields the rules read."""

from __future__ import annotations

import asyncio
import copy
import datetime
from typing import Any

import pytest

from finetune_operator.expectations import Expectations
from finetune_operator.job.progress.poller import ProgressPoller
from finetune_operator.job.relevance import (
    FRESH_POD,
    job_fingerprint,
    pod_fingerprint,
    presence_fingerprint,
    trim_pod,
)
from finetune_operator.job.scrapes import ScrapeTimers
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.workqueue import WorkQueue

KEY = ("team-a", "reviews")


def running_pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews-a1-0", "namespace": KEY[0]},
        "spec": {"nodeName": "gpu-0"},
        "status": {
            "phase": "Running",
            "podIP": "127.0.10.4",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "t1"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
            ],
            "containerStatuses": [
                {"name": "trainer", "state": {"running": {"startedAt": "t1"}}, "image": "x"}
            ],
            **status,
        },
    }


def test_a_new_pending_pod_reads_like_no_pod_and_a_binding_changes_nothing():
    pending = {"metadata": {"name": "p"}, "status": {"phase": "Pending"}}
    bound = {
        "metadata": {"name": "p"},
        "spec": {"nodeName": "gpu-0"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "trainer", "state": {"waiting": {"reason": "ContainerCreating"}}}],
        },
    }
    assert pod_fingerprint(None) == pod_fingerprint(pending) == pod_fingerprint(bound) == FRESH_POD
    unschedulable = copy.deepcopy(pending)
    unschedulable["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    ]
    assert pod_fingerprint(unschedulable) != FRESH_POD
    deleting = copy.deepcopy(pending)
    deleting["metadata"]["deletionTimestamp"] = "t9"
    assert pod_fingerprint(deleting) != FRESH_POD


NOISE = [
    lambda pod: pod["status"]["conditions"][0].update(status="False", lastTransitionTime="t5"),  # readiness
    lambda pod: pod["status"]["conditions"][1].update(lastTransitionTime="t7"),  # a timestamp
    lambda pod: pod["metadata"].update(resourceVersion="99", annotations={"a": "b"}),
    lambda pod: pod["status"]["containerStatuses"][0].update(image="y", ready=False),
]
SIGNAL = [
    lambda pod: pod["status"].update(phase="Succeeded"),
    lambda pod: pod["status"].update(phase="Failed", reason="Evicted", message="ephemeral storage"),
    lambda pod: pod["status"]["containerStatuses"][0].update(
        state={"terminated": {"exitCode": 78, "reason": "Error", "message": "bad field"}}
    ),
    lambda pod: pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"}),
    lambda pod: pod["metadata"].update(deletionTimestamp="t9"),
    lambda pod: pod["status"].update(podIP="127.0.10.5"),
]


@pytest.mark.parametrize("change", NOISE)
def test_pod_changes_no_rule_reads_queue_nothing(change):
    pod = running_pod()
    changed = copy.deepcopy(pod)
    change(changed)
    assert pod_fingerprint(changed) == pod_fingerprint(pod)


@pytest.mark.parametrize("change", SIGNAL)
def test_pod_changes_a_rule_reads_queue_a_pass(change):
    pod = running_pod()
    changed = copy.deepcopy(pod)
    change(changed)
    assert pod_fingerprint(changed) != pod_fingerprint(pod)


def test_a_jobs_counters_queue_nothing_its_conditions_suspend_and_deletion_do():
    job = {"metadata": {"name": "j"}, "spec": {"suspend": False}, "status": {"active": 2}}
    counted = copy.deepcopy(job)
    counted["status"].update(active=1, ready=1, succeeded=1, uncountedTerminatedPods={"succeeded": ["u"]})
    assert job_fingerprint(counted) == job_fingerprint(job)
    complete = copy.deepcopy(job)
    complete["status"]["conditions"] = [{"type": "Complete", "status": "True", "lastProbeTime": "t"}]
    suspended = copy.deepcopy(job)
    suspended["spec"]["suspend"] = True
    deleting = copy.deepcopy(job)
    deleting["metadata"]["deletionTimestamp"] = "t"
    for changed in (complete, suspended, deleting):
        assert job_fingerprint(changed) != job_fingerprint(job)
    assert presence_fingerprint(None) != presence_fingerprint({"metadata": {}})


def test_a_cached_pod_keeps_what_the_rules_read():
    pod = running_pod(hostIP="127.0.0.9", qosClass="Guaranteed", startTime="t0")
    trimmed = trim_pod(pod)
    assert set(trimmed["status"]) == {"phase", "podIP", "conditions", "containerStatuses"}
    assert trimmed["status"]["containerStatuses"] == [
        {"name": "trainer", "state": {"running": {"startedAt": "t1"}}}
    ]
    assert pod_fingerprint(trimmed) == pod_fingerprint(pod)


def test_the_echo_of_our_own_create_or_delete_is_told_apart_once():
    expectations = Expectations()
    expectations.expect_created(KEY, "jobs", "reviews-a1", 0)
    expectations.expect_deleted(KEY, "configmaps", "reviews-trainer-spec")
    assert not expectations.echo(KEY, "jobs", "reviews-a1", "modified")
    assert not expectations.echo(KEY, "jobs", "another", "added")
    assert expectations.echo(KEY, "jobs", "reviews-a1", "added")
    assert not expectations.echo(KEY, "jobs", "reviews-a1", "added")  # met: later events are news
    assert not expectations.echo(KEY, "configmaps", "reviews-trainer-spec", "added")
    assert expectations.echo(KEY, "configmaps", "reviews-trainer-spec", "deleted")
    assert len(expectations) == 0


def test_a_pass_supersedes_the_keys_pending_timer():
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add_after("a", 0.05)
        queue.add("a")
        assert await queue.get() == "a"
        assert not queue.pending("a")  # the batched event's timer is covered by this pass
        queue.done("a")
        queue.add_after("a", 0.01)  # the pass's own next look
        assert await asyncio.wait_for(queue.get(), 5) == "a"

    asyncio.run(scenario())


def test_the_condition_gauge_counts_by_difference():
    metrics = OperatorMetrics()
    metrics.set_job_conditions(("n", "a"), ["Running"])
    metrics.set_job_conditions(("n", "b"), ["Running"])
    metrics.set_job_conditions(("n", "a"), ["Succeeded"])
    metrics.forget_job(("n", "b"))
    assert metrics.jobs.labels(condition="Running")._value.get() == 0
    assert metrics.jobs.labels(condition="Succeeded")._value.get() == 1


def test_a_scrape_between_passes_queues_a_pass_only_when_it_learned_something():
    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    bodies = iter(["finetune_trainer_step 5\n", "finetune_trainer_step 5\n", "finetune_trainer_step 6\n"])

    async def fetch(url: str, _timeout: float) -> str:
        return next(bodies)

    async def scenario() -> list[tuple[str, str]]:
        queued: list[tuple[str, str]] = []
        poller = ProgressPoller(interval_seconds=0.5, max_backoff_seconds=1, fetch=fetch)
        timers = ScrapeTimers(poller, queued.append, lambda: now)
        await poller.refresh(KEY, "http://127.0.0.1:1/metrics", now)  # the pass's own scrape: step 5
        for _ in range(2):
            poller.latest(KEY).next_poll = None  # due now
            timers.schedule(KEY, "http://127.0.0.1:1/metrics", 0)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if timers.scrapes and not timers._tasks:
                    break
        timers.stop()
        return queued

    queued = asyncio.run(scenario())
    assert queued == [KEY]  # step 5 again: nothing; step 6: one pass


def test_every_index_succeeded_is_success_before_the_jobs_complete_condition():
    from finetune_operator.job.failure_policy import Verdict, classify_attempt
    from finetune_operator.job.pods import COMPLETION_INDEX_KEY

    def pod(index: int, phase: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"p-{index}", "labels": {COMPLETION_INDEX_KEY: str(index)}},
            "status": {"phase": phase},
        }

    job: dict[str, Any] = {"metadata": {"name": "j"}, "status": {"active": 1}}
    assert classify_attempt(job, [pod(0, "Succeeded"), pod(1, "Succeeded")], 2).verdict is Verdict.SUCCEEDED
    assert classify_attempt(job, [pod(0, "Succeeded"), pod(1, "Running")], 2).verdict is not Verdict.SUCCEEDED


def test_detail_only_changes_are_coalesced_and_transitions_are_not():
    from finetune_operator.job.progress.status import detail_only_change

    def status(message: str, running: str = "False", reason: str = "WorkersStarting", **extra: Any):
        conditions = [{"type": "Running", "status": running, "reason": reason, "message": message}]
        return {"phase": "Pending", "conditions": conditions, "message": message, **extra}

    starting = status("0 of 2 workers are running", workers=[{"index": 0, "phase": "Pending"}])
    one_up = status("1 of 2 workers are running", workers=[{"index": 0, "phase": "Running"}])
    assert detail_only_change(starting, one_up)
    assert detail_only_change(starting, {**starting, "progress": {"step": 3}})
    assert not detail_only_change(starting, status("all 2 workers are running", "True", "AllWorkersRunning"))
    assert not detail_only_change(starting, {**starting, "attempt": 2})
    assert not detail_only_change(starting, dict(starting))
