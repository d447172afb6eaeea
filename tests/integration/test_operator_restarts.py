"""The operator SIGKILLed at several points of a job's life: no duplicate children, status converges."""

from __future__ import annotations

import pytest

from localcluster import kwokpods
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster


def attempt_jobs(finetunejobs, name):
    return sorted(job.metadata.name for job in finetunejobs.jobs(name))


def test_operator_killed_at_several_points_converges_without_duplicates(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace

    # 1. Down while the job is created: it starts once the operator is back.
    operator.kill()
    finetunejobs.create(finetunejobs.manifest("sturdy", workers=2, gpus=1, maxRestarts=2))
    operator.start()
    pods = finetunejobs.wait_pods_running("sturdy", attempt=1, count=2)
    finetunejobs.wait_condition("sturdy", "Running")

    # 2. Killed while running; a worker fails while it is down: exactly one restart is counted.
    operator.kill()
    kwokpods.fail_pod(core_v1, ns, pods[0].metadata.name, exit_code=1, message="segfault")
    operator.start()
    status = finetunejobs.wait_condition("sturdy", "Restarting", reason="WorkerFailed")
    assert status["restarts"]["failures"] == 1

    # 3. Killed again during the backoff, twice: still one failure, attempt 2 starts once.
    operator.restart()
    operator.restart()
    pods = finetunejobs.wait_pods_running("sturdy", attempt=2, count=2)
    status = finetunejobs.wait_condition("sturdy", "Running")
    assert status["attempt"] == 2 and status["restarts"] == {"total": 1, "preemptions": 0, "failures": 1}
    assert attempt_jobs(finetunejobs, "sturdy") == ["sturdy-a2"]

    # 4. Killed; the workers succeed while it is down: the status catches up after the restart.
    operator.kill()
    for pod in pods:
        kwokpods.succeed_pod(core_v1, ns, pod.metadata.name)
    operator.start()
    status = finetunejobs.wait_condition("sturdy", "Succeeded")
    assert status["attempt"] == 2 and status["restarts"]["total"] == 1
    assert attempt_jobs(finetunejobs, "sturdy") == ["sturdy-a2"]
    assert len(finetunejobs.pods("sturdy")) == 2


def test_operator_killed_right_after_a_disruption_restarts_the_gang_once(operator, finetunejobs, core_v1):
    ns = finetunejobs.namespace
    finetunejobs.create(finetunejobs.manifest("bumpy", workers=2, gpus=1, maxRestarts=0))
    pods = finetunejobs.wait_pods_running("bumpy", attempt=1, count=2)

    kwokpods.disrupt_pod(core_v1, ns, pods[0].metadata.name)
    finetunejobs.wait_status("bumpy", lambda status: status.get("attempt") == 2, "attempt 2 recorded")
    operator.kill()  # wherever it was: deleting attempt 1, or creating attempt 2
    operator.start()
    finetunejobs.wait_pods_running("bumpy", attempt=2, count=2)
    status = finetunejobs.wait_condition("bumpy", "Running")
    assert status["restarts"] == {"total": 1, "preemptions": 1, "failures": 0}
    wait_until(lambda: attempt_jobs(finetunejobs, "bumpy") == ["bumpy-a2"], 60, "only attempt 2's Job")
    assert not finetunejobs.pods("bumpy", attempt=1)
