"""When a schedule fires: instants in a time zone, across daylight-saving changes, matching the
cases robfig/cron (the parser of Kubernetes CronJob) is tested with, and croniter in UTC."""

import dataclasses
import itertools
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from finetune_api.schedule_cron import parse_cron
from finetune_operator.schedule.cron_times import instants_after, instants_at_or_before, next_run_after


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


NEXT_RUN = [
    # (schedule, zone, after, expected next run) -- times with their offset, as robfig's tests write them
    ("0 2 * * *", "UTC", "2026-03-01T00:00:00+00:00", "2026-03-01T02:00:00+00:00"),
    ("0 2 * * *", "UTC", "2026-03-01T02:00:00+00:00", "2026-03-02T02:00:00+00:00"),
    ("0 2 * * *", "Europe/Berlin", "2026-01-10T00:00:00+00:00", "2026-01-10T02:00:00+01:00"),
    ("0 2 * * *", "Asia/Kolkata", "2026-01-10T00:00:00+00:00", "2026-01-11T02:00:00+05:30"),
    ("30 23 31 12 *", "Pacific/Auckland", "2026-06-01T00:00:00+00:00", "2026-12-31T23:30:00+13:00"),
    # spring forward in New York (02:00 EST -> 03:00 EDT): 02:30 does not exist that day
    ("30 2 11 3 *", "America/New_York", "2012-03-11T00:00:00-05:00", "2013-03-11T02:30:00-04:00"),
    ("0 * * * *", "America/New_York", "2012-03-11T00:00:00-05:00", "2012-03-11T01:00:00-05:00"),
    ("0 * * * *", "America/New_York", "2012-03-11T01:00:00-05:00", "2012-03-11T03:00:00-04:00"),
    ("30 2 * * *", "America/New_York", "2012-03-10T03:00:00-05:00", "2012-03-12T02:30:00-04:00"),
    # fall back (02:00 EDT -> 01:00 EST): 01:xx happens twice, 02:30 once
    ("30 2 4 11 *", "America/New_York", "2012-11-04T00:00:00-04:00", "2012-11-04T02:30:00-05:00"),
    ("30 1 4 11 *", "America/New_York", "2012-11-04T01:45:00-04:00", "2012-11-04T01:30:00-05:00"),
    ("0 * * * *", "America/New_York", "2012-11-04T00:00:00-04:00", "2012-11-04T01:00:00-04:00"),
    ("0 * * * *", "America/New_York", "2012-11-04T01:00:00-04:00", "2012-11-04T01:00:00-05:00"),
    ("0 * * * *", "America/New_York", "2012-11-04T01:00:00-05:00", "2012-11-04T02:00:00-05:00"),
    # Europe: 02:30 is skipped on the last Sunday of March, 02:30 runs twice on the last of October
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T03:00:00+01:00", "2026-03-30T02:30:00+02:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T03:00:00+02:00", "2026-10-25T02:30:00+02:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"),
    # a zone whose spring-forward skips midnight (Havana, 2026-03-08 00:00 -> 01:00)
    ("0 0 * * *", "America/Havana", "2026-03-07T12:00:00-05:00", "2026-03-09T00:00:00-04:00"),
    # day-of-month OR day-of-week when both are restricted; AND when one starts with *
    ("0 0 13 * FRI", "UTC", "2026-03-01T00:00:00+00:00", "2026-03-06T00:00:00+00:00"),
    ("0 0 */2 * FRI", "UTC", "2026-03-01T00:00:00+00:00", "2026-03-13T00:00:00+00:00"),
    # leap days, and the century year 2100 that is not a leap year
    ("0 0 29 2 *", "UTC", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00+00:00", "2104-02-29T00:00:00+00:00"),
]


@pytest.mark.parametrize(("schedule", "zone", "after", "expected"), NEXT_RUN)
def test_next_run(schedule, zone, after, expected):
    got = next_run_after(parse_cron(schedule), ZoneInfo(zone), at(after))
    assert got == at(expected)
    assert got.tzinfo is UTC


def test_repeated_hour_runs_twice_and_skipped_hour_never():
    zone = ZoneInfo("Europe/Berlin")
    runs = list(
        itertools.islice(instants_after(parse_cron("*/30 * * * *"), zone, at("2026-10-25T01:00:00+02:00")), 5)
    )
    assert [r.astimezone(zone).strftime("%H:%M%z") for r in runs] == [
        "01:30+0200",
        "02:00+0200",
        "02:30+0200",
        "02:00+0100",
        "02:30+0100",
    ]
    spring = list(
        itertools.islice(instants_after(parse_cron("*/30 * * * *"), zone, at("2026-03-29T01:00:00+01:00")), 3)
    )
    assert [r.astimezone(zone).strftime("%H:%M%z") for r in spring] == [
        "01:30+0100",
        "03:00+0200",
        "03:30+0200",
    ]


def test_instants_at_or_before_is_the_reverse_of_instants_after():
    expression, zone = parse_cron("15,45 1-3 * * *"), ZoneInfo("America/New_York")
    start, end = at("2012-11-03T00:00:00-04:00"), at("2012-11-05T00:00:00-05:00")
    forward = list(itertools.takewhile(lambda t: t <= end, instants_after(expression, zone, start)))
    backward = list(instants_at_or_before(expression, zone, end, start))
    assert backward == forward[::-1]
    assert len(forward) == 6 + 8  # Nov 3, and Nov 4 whose repeated 01:xx adds two runs


def test_a_search_that_finds_nothing_ends():
    # The model refuses such a schedule; the search must still end rather than loop.
    never = dataclasses.replace(parse_cron("0 0 1 2 *"), days_of_month=frozenset({31}))
    assert next_run_after(never, ZoneInfo("UTC"), at("2026-01-01T00:00:00+00:00")) is None


DIFFERENTIAL = [
    "*/7 * * * *",
    "0 */5 * * *",
    "15 3 1,15 * *",
    "0 0 * * 1-5",
    "30 4 * 2,8 *",
    "0 12 10-20/3 * *",
]


@pytest.mark.parametrize("schedule", DIFFERENTIAL)
def test_agrees_with_croniter_in_utc(schedule):
    rng = random.Random(schedule)
    for _ in range(5):
        start = datetime.fromtimestamp(rng.randrange(1_700_000_000, 1_900_000_000), UTC)
        ours = list(itertools.islice(instants_after(parse_cron(schedule), UTC, start), 20))
        reference = croniter(schedule, start)
        theirs = [reference.get_next(datetime) for _ in range(20)]
        assert ours == theirs
