"""Which scheduled time, if any, is due now: the missed-run rules of Kubernetes CronJob.

Mirrors `mostRecentScheduleTime` and the deadline check of the CronJob controller
(pkg/controller/cronjob): the unmet times are the scheduled times after the last run that was
created (or after the schedule's creation) up to now. However many were missed while the operator
was down or the schedule suspended, only the most recent one is started (at most one catch-up), and
none when it is more than startingDeadlineSeconds late. The caller passes `now`, so tests decide
what time it is.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from itertools import islice

from finetune_api.schedule_cron import CronExpression
from finetune_operator.schedule.cron_times import instants_at_or_before, next_run_after

MANY_MISSED = 100
"""Beyond this many unmet times the count is not computed exactly (as in CronJob)."""


@dataclass(frozen=True)
class DueRun:
    """What the clock says about runs.

    scheduled_time: the unmet scheduled time to start now, or None.
    missed: unmet times in the window (the started one included), capped at MANY_MISSED + 1.
    too_late: scheduled_time's starting deadline has passed; it must be skipped, not started.
    next_time: the first scheduled time after now (None when the schedule never fires again).
    """

    scheduled_time: datetime | None
    missed: int
    too_late: bool
    next_time: datetime | None


def earliest_unmet_bound(
    created: datetime, last_schedule_time: datetime | None, latest_child_time: datetime | None
) -> datetime:
    """Unmet times are strictly after this: the newest of creation, lastScheduleTime and the scheduled
    time of the newest child (which survives a lost status write)."""
    candidates = [t for t in (created, last_schedule_time, latest_child_time) if t is not None]
    return max(candidates)


def due_run(
    expression: CronExpression,
    zone: tzinfo,
    *,
    earliest: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
) -> DueRun:
    """The CronJob decision for one pass at `now` (all datetimes aware)."""
    next_time = next_run_after(expression, zone, now)
    unmet = islice(instants_at_or_before(expression, zone, now, earliest), MANY_MISSED + 1)
    most_recent = next(unmet, None)
    if most_recent is None:
        return DueRun(None, 0, False, next_time)
    missed = 1 + sum(1 for _ in unmet)
    too_late = (
        starting_deadline_seconds is not None
        and most_recent + timedelta(seconds=starting_deadline_seconds) < now
    )
    return DueRun(most_recent, missed, too_late, next_time)
