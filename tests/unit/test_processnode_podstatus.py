"""Pod phase, conditions and container states, kubelet style."""

import pytest

from localcluster.processnode.logtail import tail_text
from localcluster.processnode.podstatus import (
    RUNNING,
    TERMINATED,
    WAITING,
    ContainerRecord,
    PodFactsForStatus,
    container_status,
    merge_conditions,
    pod_phase,
    pod_status,
)


def rec(state=WAITING, exit_code=None, restarts=0, init=False, name="c"):
    return ContainerRecord(name=name, state=state, exit_code=exit_code, restart_count=restarts, init=init)


@pytest.mark.parametrize(
    ("init", "main", "policy", "deleting", "phase"),
    [
        ([], [rec()], "Never", False, "Pending"),
        ([], [rec(RUNNING)], "Never", False, "Running"),
        ([], [rec(TERMINATED, 0)], "Never", False, "Succeeded"),
        ([], [rec(TERMINATED, 3)], "Never", False, "Failed"),
        ([], [rec(TERMINATED, 3)], "OnFailure", False, "Running"),
        ([], [rec(TERMINATED, 0)], "OnFailure", False, "Succeeded"),
        ([], [rec(TERMINATED, 0)], "Always", False, "Running"),
        ([], [rec(TERMINATED, 143)], "Always", True, "Failed"),
        ([], [rec(TERMINATED, 0), rec(RUNNING, name="d")], "Never", False, "Running"),
        ([], [rec(TERMINATED, 0), rec(TERMINATED, 1, name="d")], "Never", False, "Failed"),
        ([], [rec(WAITING, restarts=2)], "Always", False, "Running"),
        ([rec(RUNNING, init=True)], [rec()], "Never", False, "Pending"),
        ([rec(TERMINATED, 1, init=True)], [rec()], "Never", False, "Failed"),
        ([rec(TERMINATED, 1, init=True)], [rec()], "OnFailure", False, "Pending"),
        ([rec(TERMINATED, 0, init=True)], [rec(RUNNING)], "Never", False, "Running"),
    ],
)
def test_phase(init, main, policy, deleting, phase):
    assert pod_phase(init, main, policy, deleting) == phase


def test_container_status_shapes():
    terminated = ContainerRecord(
        name="main",
        image="img",
        state=TERMINATED,
        exit_code=3,
        reason="Error",
        message="bad data",
        started_at="t0",
        finished_at="t1",
        container_id="processnode://x",
    )
    status = container_status(terminated)
    assert status["state"] == {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "message": "bad data",
            "startedAt": "t0",
            "finishedAt": "t1",
            "containerID": "processnode://x",
        }
    }
    assert (status["ready"], status["started"], status["restartCount"]) == (False, False, 0)
    running = container_status(ContainerRecord(name="main", state=RUNNING, started_at="t0"))
    assert running["state"] == {"running": {"startedAt": "t0"}} and running["ready"] is True
    waiting = container_status(ContainerRecord(name="main", reason="CreateContainerConfigError", message="m"))
    assert waiting["state"] == {"waiting": {"reason": "CreateContainerConfigError", "message": "m"}}


def test_conditions_keep_transition_time_while_status_is_unchanged():
    first = merge_conditions([], {"Ready": ("False", "ContainersNotReady", "")}, "t0")
    same = merge_conditions(first, {"Ready": ("False", "ContainersNotReady", "")}, "t1")
    flipped = merge_conditions(same, {"Ready": ("True", "", "")}, "t2")
    assert same[0]["lastTransitionTime"] == "t0"
    assert flipped[0]["lastTransitionTime"] == "t2"


def test_pod_status_of_a_succeeded_pod():
    facts = PodFactsForStatus(pod_ip="127.0.1.9", host_ip="127.0.0.1", start_time="t0")
    status = pod_status([], [rec(TERMINATED, 0)], "Succeeded", facts, [], "t1")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "PodCompleted"
    assert conditions["Initialized"]["status"] == "True"
    assert status["podIPs"] == [{"ip": "127.0.1.9"}] and status["hostIP"] == "127.0.0.1"
    assert "initContainerStatuses" not in status


def test_log_tail_for_fallback_messages():
    data = b"".join(b"line %d\n" % i for i in range(200))
    tail = tail_text(data)
    assert tail.splitlines()[0] == "line 120" and tail.endswith("line 199")
    assert len(tail_text(b"x" * 5000)) == 2048
