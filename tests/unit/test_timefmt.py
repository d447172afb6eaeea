"""One time format for both controllers: the same stamp reads the same everywhere."""

from __future__ import annotations

import datetime

import pytest

from finetune_operator import timefmt
from finetune_operator.job import status as job_status
from finetune_operator.schedule import children

UTC = datetime.UTC
NOON = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T12:00:00Z", NOON),
        ("2026-03-01T13:00:00+01:00", NOON),
        ("2026-03-01T12:00:00", NOON),  # no zone: Kubernetes times are UTC
        (datetime.datetime(2026, 3, 1, 12, 0), NOON),  # naive datetime, e.g. from Kopf
        (NOON, NOON),
        ("", None),
        (None, None),
        ("yesterday", None),
        (12, None),
    ],
)
def test_parse_time(value, expected):
    assert timefmt.parse_time(value) == expected


def test_both_controllers_use_the_one_parser():
    assert job_status.parse_time is timefmt.parse_time
    assert children.parse_time is timefmt.parse_time


def test_format_round_trips_and_drops_fractions():
    moment = datetime.datetime(
        2026, 3, 1, 13, 0, 0, 750_000, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    assert timefmt.format_time(moment) == "2026-03-01T12:00:00Z"
    assert timefmt.parse_time(timefmt.format_time(NOON)) == NOON
    assert job_status.rfc3339(moment) == children.format_time(moment) == "2026-03-01T12:00:00Z"
