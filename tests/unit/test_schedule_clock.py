"""The clock the schedule reconciler reads: system time, or a file tests rewrite."""

from datetime import UTC, datetime

import pytest

from finetune_operator.schedule.clock import ClockError, clock_from_env, system_clock


def test_system_clock_without_the_knob():
    assert clock_from_env({}) is system_clock
    assert system_clock().tzinfo is UTC


def test_file_clock_follows_the_file(tmp_path):
    path = tmp_path / "clock"
    clock = clock_from_env({"FINETUNE_OPERATOR_FAKE_CLOCK_FILE": str(path)})
    path.write_text("2026-03-01T01:59:30Z\n")
    assert clock() == datetime(2026, 3, 1, 1, 59, 30, tzinfo=UTC)
    path.write_text("2026-03-01T03:00:00+01:00")
    assert clock() == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize("content", ["yesterday", "2026-03-01T02:00:00", ""])
def test_bad_clock_file_is_an_error_naming_the_knob(tmp_path, content):
    path = tmp_path / "clock"
    path.write_text(content)
    with pytest.raises(ClockError, match="FINETUNE_OPERATOR_FAKE_CLOCK_FILE"):
        clock_from_env({"FINETUNE_OPERATOR_FAKE_CLOCK_FILE": str(path)})()


def test_missing_clock_file_is_an_error(tmp_path):
    with pytest.raises(ClockError, match="cannot read the fake clock file"):
        clock_from_env({"FINETUNE_OPERATOR_FAKE_CLOCK_FILE": str(tmp_path / "absent")})()
