"""bench.trainer_logs: step times, checkpoint commits and step classification from JSON log lines."""

from __future__ import annotations

import json

import pytest

from bench.trainer_logs import (
    Commit,
    classify_steps,
    commits,
    first_record,
    json_lines,
    step_durations,
    step_log_times,
    timestamp,
)


def line(at: float, msg: str, **fields) -> str:
    whole = int(at)
    millis = round((at - whole) * 1000)
    time = f"2026-01-01T00:00:{whole:02d}.{millis:03d}Z"
    return json.dumps({"time": time, "level": "info", "msg": msg, **fields})


BASE = timestamp("2026-01-01T00:00:00.000Z")


def test_json_lines_skips_library_output():
    text = "\n".join([line(1, "data loaded"), "Some warning from torch", "{broken", "[1, 2]"])
    assert [r["msg"] for r in json_lines(text)] == ["data loaded"]


def test_timestamp_reads_z_and_offsets():
    assert timestamp("2026-01-01T00:00:01.500Z") - BASE == pytest.approx(1.5)
    assert timestamp("2026-01-01T01:00:01.500+01:00") - BASE == pytest.approx(1.5)


def test_step_times_and_durations_from_train_logs():
    records = json_lines(
        "\n".join(
            [
                line(1.0, "train log", step=1, loss=0.7),
                line(1.2, "train log", step=2, loss=0.6),
                line(1.2, "train log", step=2, loss=0.6),  # logged twice: the first counts
                line(1.8, "train log", step=4, loss=0.5),  # a gap of two steps: spread evenly
                line(2.0, "eval log", step=4, eval_loss=0.5),
            ]
        )
    )
    times = step_log_times(records)
    assert sorted(times) == [1, 2, 4]
    durations = step_durations(times)
    assert durations[2] == pytest.approx(0.2) and durations[4] == pytest.approx(0.3)
    assert 1 not in durations


def test_commits_from_checkpoint_committed_lines():
    records = json_lines(line(3.0, "checkpoint committed", checkpoint_step=10, bytes=2048, seconds=0.75))
    (commit,) = commits(records)
    assert (commit.step, commit.bytes, commit.upload_seconds) == (10, 2048, 0.75)
    assert commit.committed_at - BASE == pytest.approx(3.0)


def test_classify_steps_around_an_upload():
    # steps 1..8 at 0.1 s each; a checkpoint of step 3 is committed at 0.65 s (during steps 5 and 6)
    times = {step: BASE + 0.1 * step for step in range(1, 9)}
    durations = step_durations(times)
    classes = classify_steps(durations, times, [Commit(3, BASE + 0.65, 1000, 0.3)])
    assert len(classes.after_save) == 1  # step 4 carried the local save
    assert len(classes.during_upload) == 2  # steps 5 and 6 ended before the commit
    assert len(classes.without_upload) == 4  # steps 2, 3, 7, 8
    assert classes.commit_latency == [pytest.approx(0.35)]


def test_first_record_by_message():
    records = [{"msg": "a", "n": 1}, {"msg": "b"}, {"msg": "a", "n": 2}]
    assert first_record(records, "a") == {"msg": "a", "n": 1}
    assert first_record(records, "missing") is None
