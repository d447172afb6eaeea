"""bench.recovery: splitting a recovery into phases from watch times and the trainer's log lines."""

from __future__ import annotations

import pytest

from bench.recovery import first_train_log_after, phases_from, restarting
from bench.trainer_logs import timestamp

T0 = timestamp("2026-01-01T00:00:00.000Z")


def record(at: float, msg: str, **fields):
    return {"time": f"2026-01-01T00:00:{at:06.3f}Z", "msg": msg, **fields}


ATTEMPT_2_LOG = [
    record(20.0, "data loaded", train=100),
    record(21.0, "resuming", checkpoint_step=22),
    record(22.5, "train log", step=23, loss=0.5),
    record(22.6, "train log", step=24, loss=0.4),
]


def test_phases_follow_each_other_from_deletion_to_first_step():
    phases = phases_from(T0 + 1.0, T0 + 2.0, T0 + 5.0, T0 + 6.0, ATTEMPT_2_LOG)
    assert phases["detection"] == 1.0
    assert phases["gangStopAndRelaunch"] == 3.0
    assert phases["newPodsRunning"] == 1.0
    assert phases["modelLoad"] == 14.0
    assert phases["checkpointDownload"] == 1.0
    assert phases["firstStep"] == 1.5
    assert phases["total"] == pytest.approx(21.5)
    assert (phases["resumedFromStep"], phases["firstStepAfterResume"]) == (22, 23)


def test_detection_is_the_new_job_when_the_condition_came_later_or_never():
    for noticed in (None, T0 + 9.0):
        phases = phases_from(T0 + 1.0, noticed, T0 + 5.0, T0 + 6.0, ATTEMPT_2_LOG)
        assert phases["detection"] == 4.0 and phases["gangStopAndRelaunch"] == 0.0


def test_missing_log_lines_leave_their_phases_empty():
    phases = phases_from(T0, T0, T0 + 1.0, T0 + 2.0, [record(20.0, "data loaded")])
    assert phases["checkpointDownload"] is None and phases["firstStep"] is None and phases["total"] is None


def test_first_train_log_after_a_message():
    assert first_train_log_after(ATTEMPT_2_LOG, "resuming")["step"] == 23
    assert first_train_log_after(ATTEMPT_2_LOG[:2], "resuming") is None


def test_restarting_condition_milestone():
    body = {
        "metadata": {"name": "recover"},
        "status": {"conditions": [{"type": "Restarting", "status": "True"}]},
    }
    assert restarting(body) == [("recover", "restarting")]
    body["status"]["conditions"][0]["status"] = "False"
    assert restarting(body) == []
