"""When a cron expression fires, as instants, in a time zone with daylight-saving changes.

Definition (the one Kubernetes CronJob gets from robfig/cron): a run is due at every instant, on a
whole minute, whose wall-clock time in the schedule's time zone matches the expression. Two
consequences users should know, both documented in docs/schedules.md:

- a wall-clock time skipped by a spring-forward change (02:30 on the night clocks jump from 02:00 to
  03:00) matches no instant, so that run does not happen;
- a wall-clock time repeated by a fall-back change (01:30 happens twice) matches two instants, so a
  schedule for that time runs twice.

The search walks local calendar days and only expands the days whose date matches, so a yearly
schedule costs a few thousand cheap date checks, not a minute-by-minute scan. Everything here is
pure: instants in and out are aware datetimes.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo

from finetune_api.schedule_cron import CronExpression

SEARCH_DAYS = 366 * 8 + 2
"""Longest gap between two runs that can exist (Feb 29 skips the non-leap year 2100): beyond this a
search gives up."""


def day_matches(expression: CronExpression, day: date) -> bool:
    """Whether `day` (a local calendar date) is a day the expression runs on."""
    if day.month not in expression.months:
        return False
    in_month = day.day in expression.days_of_month
    in_week = (day.isoweekday() % 7) in expression.days_of_week
    if expression.day_of_month_restricted and expression.day_of_week_restricted:
        return in_month or in_week
    return in_month and in_week


def _wall_times(expression: CronExpression, day: date) -> Iterator[datetime]:
    for hour in sorted(expression.hours):
        for minute in sorted(expression.minutes):
            yield datetime(day.year, day.month, day.day, hour, minute)


def _instants_on_day(expression: CronExpression, zone: tzinfo, day: date) -> list[datetime]:
    """Every instant of `day` (local) whose wall-clock time matches, sorted, in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    offset = start.utcoffset()
    if offset == end.utcoffset() and offset == start.replace(fold=1).utcoffset():
        # No change of offset during this day: wall time minus offset is the instant.
        return [(wall - offset).replace(tzinfo=UTC) for wall in _wall_times(expression, day)]
    instants: set[datetime] = set()
    for wall in _wall_times(expression, day):
        for fold in (0, 1):
            instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) == wall:  # skipped wall times fail this
                instants.add(instant)
    return sorted(instants)


def instants_after(expression: CronExpression, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """The instants (UTC) the expression fires strictly after `after`, in order; ends after SEARCH_DAYS
    days without a run."""
    day = after.astimezone(zone).date() - timedelta(days=1)
    idle_days = 0
    while idle_days <= SEARCH_DAYS:
        found = False
        if day_matches(expression, day):
            for instant in _instants_on_day(expression, zone, day):
                if instant > after:
                    found = True
                    yield instant
        idle_days = 0 if found else idle_days + 1
        day += timedelta(days=1)


def instants_at_or_before(
    expression: CronExpression, zone: tzinfo, at: datetime, not_before: datetime
) -> Iterator[datetime]:
    """The instants (UTC) the expression fires in (not_before, at], latest first."""
    day = at.astimezone(zone).date() + timedelta(days=1)
    last_day = not_before.astimezone(zone).date() - timedelta(days=1)
    while day >= last_day:
        if day_matches(expression, day):
            for instant in reversed(_instants_on_day(expression, zone, day)):
                if not_before < instant <= at:
                    yield instant
        day -= timedelta(days=1)


def next_run_after(expression: CronExpression, zone: tzinfo, after: datetime) -> datetime | None:
    """The first instant the expression fires after `after`, or None when it never fires again."""
    return next(instants_after(expression, zone, after), None)
