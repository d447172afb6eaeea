"""The cron grammar of FineTuneSchedule.spec.schedule, checked the same way by the CRD and the model.

Kubernetes CronJob parses schedules with robfig/cron (`ParseStandard`); users know that dialect, so
this module accepts the same five-field expressions and macros and gives them the same meaning. CEL
cannot parse cron, so the grammar is written as one strict regular expression (`CRON_PATTERN`, the
CRD's `pattern`: every token of every field is range-checked there) plus the few checks a regular
expression cannot make (a range whose start is after its end, a day that no listed month has), done
in `parse_cron`. The operator computes run times from the parsed `CronExpression`, never from text.

Grammar (fields separated by spaces or tabs, names case-insensitive):

    schedule := macro | minute hour day-of-month month day-of-week
    macro    := @yearly | @annually | @monthly | @weekly | @daily | @midnight | @hourly
    field    := item ("," item)*
    item     := ("*" | value ["-" value]) ["/" step]        ("?" may stand for "*" in the day fields)
    minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT
    (0 and 7 are Sunday), step 1-99. "a/s" means "a-max/s".

As in cron, when both day fields are restricted (neither starts with "*" or "?") a day matches if
either field matches; otherwise both must.
"""

import re
from dataclasses import dataclass

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Longest day each month can have (February 29 in leap years): a schedule whose days fit no month
# would never run.
_MONTH_MAX_DAY = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

SCHEDULE_MAX_LENGTH = 256


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    value_pattern: str
    names: tuple[str, ...] = ()
    names_start: int = 0
    allows_question_mark: bool = False


_FIELDS = (
    _FieldSpec("minute", 0, 59, r"[0-5]?[0-9]"),
    _FieldSpec("hour", 0, 23, r"[01]?[0-9]|2[0-3]"),
    _FieldSpec("day-of-month", 1, 31, r"0?[1-9]|[12][0-9]|3[01]", allows_question_mark=True),
    _FieldSpec("month", 1, 12, r"0?[1-9]|1[0-2]|" + "|".join(MONTH_NAMES), MONTH_NAMES, 1),
    _FieldSpec(
        "day-of-week", 0, 7, r"[0-7]|" + "|".join(WEEKDAY_NAMES), WEEKDAY_NAMES, 0, allows_question_mark=True
    ),
)
_STEP_PATTERN = r"[1-9][0-9]?"


def _field_pattern(field: _FieldSpec) -> str:
    star = r"\*|\?" if field.allows_question_mark else r"\*"
    value = f"(?:{field.value_pattern})"
    item = f"(?:(?:{star}|{value}(?:-{value})?)(?:/{_STEP_PATTERN})?)"
    return f"{item}(?:,{item})*"


_MACRO_PATTERN = "@(?:" + "|".join(m[1:] for m in MACROS) + ")"
_SEPARATOR = r"[ \t]+"
CRON_PATTERN = (
    "(?i)^(?:"
    + _MACRO_PATTERN
    + "|"
    + _SEPARATOR.join(f"(?:{_field_pattern(field)})" for field in _FIELDS)
    + ")$"
)
"""The CRD pattern (RE2 and Python `re` alike): macros or five fields of range-checked tokens."""

CRON_MESSAGE = (
    "must be a cron expression of five fields (minute hour day-of-month month day-of-week, e.g. "
    "'0 2 * * *' for 02:00 every day) or one of @yearly, @monthly, @weekly, @daily, @hourly"
)

_CRON_RE = re.compile(CRON_PATTERN)


class CronError(ValueError):
    """The schedule is not a valid cron expression; the message names the field and the fix."""


@dataclass(frozen=True)
class CronExpression:
    """A parsed schedule: the allowed values of each field (day-of-week 0 = Sunday ... 6)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool


def _value(text: str, field: _FieldSpec) -> int:
    upper = text.upper()
    if upper in field.names:
        return field.names.index(upper) + field.names_start
    if not text.isdigit():
        raise CronError(f"{field.name} field: {text!r} is not a number between {field.low} and {field.high}")
    number = int(text)
    if not field.low <= number <= field.high:
        raise CronError(f"{field.name} field: {number} is outside {field.low}-{field.high}")
    return number


def _item_values(item: str, field: _FieldSpec) -> set[int]:
    range_text, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{field.name} field: step in {item!r} must be a positive number")
        step = int(step_text)
    if range_text in ("*", "?"):
        low, high = field.low, field.high
    elif "-" in range_text:
        start, end = range_text.split("-", 1)
        low, high = _value(start, field), _value(end, field)
        if low > high:
            raise CronError(
                f"{field.name} field: range {range_text!r} starts after it ends; put the smaller value first"
            )
    else:
        low = _value(range_text, field)
        high = field.high if step_text else low
    return set(range(low, high + 1, step))


def _field_values(text: str, field: _FieldSpec) -> frozenset[int]:
    if "?" in text and not field.allows_question_mark:
        raise CronError(f"{field.name} field: '?' is only allowed in the day-of-month and day-of-week fields")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field: empty item in {text!r}")
        values |= _item_values(item, field)
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _check_some_day_exists(expression: CronExpression) -> None:
    if expression.day_of_week_restricted or not expression.day_of_month_restricted:
        return
    earliest_day = min(expression.days_of_month)
    if not any(earliest_day <= _MONTH_MAX_DAY[month - 1] for month in expression.months):
        raise CronError(
            f"day-of-month field: no listed month has day {earliest_day}, so the schedule would never run"
        )


def parse_cron(text: str) -> CronExpression:
    """Parse a schedule (five fields or a macro); raise CronError naming the offending field."""
    if not isinstance(text, str) or not _CRON_RE.match(text):
        raise CronError(f"{CRON_MESSAGE}; got {text!r}")
    expanded = MACROS.get(text.lower(), text)
    parts = expanded.split()
    values = [_field_values(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
    expression = CronExpression(
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=values[4],
        day_of_month_restricted=not parts[2].startswith(("*", "?")),
        day_of_week_restricted=not parts[4].startswith(("*", "?")),
    )
    _check_some_day_exists(expression)
    return expression
