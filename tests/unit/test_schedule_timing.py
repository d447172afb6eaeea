"""Which run is due: CronJob's missed-run rules (at most one catch-up, none past the starting deadline)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from finetune_api.schedule_cron import parse_cron
from finetune_operator.schedule.timing import MANY_MISSED, due_run, earliest_unmet_bound


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


DUE = [
    # (case, schedule, zone, earliest, now, startingDeadlineSeconds, due, missed, too late, next)
    (
        "nothing due yet",
        "0 2 * * *",
        "UTC",
        "2026-03-01T00:00Z",
        "2026-03-01T01:59Z",
        None,
        None,
        0,
        False,
        "2026-03-01T02:00Z",
    ),
    (
        "due exactly now",
        "0 2 * * *",
        "UTC",
        "2026-03-01T00:00Z",
        "2026-03-01T02:00Z",
        None,
        "2026-03-01T02:00Z",
        1,
        False,
        "2026-03-02T02:00Z",
    ),
    (
        "due a little late",
        "0 2 * * *",
        "UTC",
        "2026-03-01T00:00Z",
        "2026-03-01T02:00:40Z",
        None,
        "2026-03-01T02:00Z",
        1,
        False,
        "2026-03-02T02:00Z",
    ),
    (
        "the last run is not due again",
        "0 2 * * *",
        "UTC",
        "2026-03-01T02:00Z",
        "2026-03-01T05:00Z",
        None,
        None,
        0,
        False,
        "2026-03-02T02:00Z",
    ),
    (
        "three nights down: only the latest",
        "0 2 * * *",
        "UTC",
        "2026-03-01T02:00Z",
        "2026-03-04T09:00Z",
        None,
        "2026-03-04T02:00Z",
        3,
        False,
        "2026-03-05T02:00Z",
    ),
    (
        "down past the deadline: skipped",
        "0 2 * * *",
        "UTC",
        "2026-03-01T02:00Z",
        "2026-03-04T09:00Z",
        3600,
        "2026-03-04T02:00Z",
        3,
        True,
        "2026-03-05T02:00Z",
    ),
    (
        "within the deadline: runs",
        "0 2 * * *",
        "UTC",
        "2026-03-01T02:00Z",
        "2026-03-04T02:59Z",
        3600,
        "2026-03-04T02:00Z",
        3,
        False,
        "2026-03-05T02:00Z",
    ),
    (
        "deadline 0 and on time",
        "*/5 * * * *",
        "UTC",
        "2026-03-01T00:00Z",
        "2026-03-01T00:05Z",
        0,
        "2026-03-01T00:05Z",
        1,
        False,
        "2026-03-01T00:10Z",
    ),
    (
        "in the schedule's zone",
        "0 2 * * *",
        "Europe/Berlin",
        "2026-03-01T00:00Z",
        "2026-03-01T01:00:30Z",
        None,
        "2026-03-01T01:00Z",
        1,
        False,
        "2026-03-02T01:00Z",
    ),
    (
        "zone ahead of UTC, not yet",
        "0 2 * * *",
        "America/New_York",
        "2026-03-01T00:00Z",
        "2026-03-01T02:00Z",
        None,
        None,
        0,
        False,
        "2026-03-01T07:00Z",
    ),
]


@pytest.mark.parametrize(
    ("case", "schedule", "zone", "earliest", "now", "deadline", "due", "missed", "too_late", "next_time"), DUE
)
def test_due_run(case, schedule, zone, earliest, now, deadline, due, missed, too_late, next_time):
    result = due_run(
        parse_cron(schedule),
        ZoneInfo(zone),
        earliest=at(earliest),
        now=at(now),
        starting_deadline_seconds=deadline,
    )
    assert (result.scheduled_time, result.missed, result.too_late, result.next_time) == (
        at(due),
        missed,
        too_late,
        at(next_time),
    ), case


def test_many_missed_is_capped():
    result = due_run(
        parse_cron("* * * * *"),
        ZoneInfo("UTC"),
        earliest=at("2025-03-01T00:00Z"),
        now=at("2026-03-01T00:00:30Z"),
        starting_deadline_seconds=None,
    )
    assert result.scheduled_time == at("2026-03-01T00:00Z")
    assert result.missed == MANY_MISSED + 1


EARLIEST = [
    ("new schedule", "2026-03-01T00:00Z", None, None, "2026-03-01T00:00Z"),
    ("last schedule time", "2026-03-01T00:00Z", "2026-03-03T02:00Z", None, "2026-03-03T02:00Z"),
    (
        "a child newer than status (status write lost)",
        "2026-03-01T00:00Z",
        "2026-03-03T02:00Z",
        "2026-03-04T02:00Z",
        "2026-03-04T02:00Z",
    ),
    (
        "status newer than every child (pruned)",
        "2026-03-01T00:00Z",
        "2026-03-05T02:00Z",
        "2026-03-04T02:00Z",
        "2026-03-05T02:00Z",
    ),
]


@pytest.mark.parametrize(("case", "created", "last", "child", "expected"), EARLIEST)
def test_earliest_unmet_bound(case, created, last, child, expected):
    assert earliest_unmet_bound(at(created), at(last), at(child)) == at(expected), case
