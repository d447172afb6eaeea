"""The cron grammar of spec.schedule: what is accepted, what it means, and that the CRD pattern and
the model agree (the pattern refuses a subset of what parse_cron refuses, never more)."""

import re

import pytest

from finetune_api.schedule_cron import CRON_PATTERN, CronError, parse_cron

ACCEPTED = [
    # (expression, minutes, hours, days of month, months, days of week, dom restricted, dow restricted)
    ("0 2 * * *", {0}, {2}, set(range(1, 32)), set(range(1, 13)), set(range(7)), False, False),
    ("*/15 * * * *", {0, 15, 30, 45}, set(range(24)), None, None, None, False, False),
    ("5/20 * * * *", {5, 25, 45}, None, None, None, None, False, False),
    ("0 9-17/4 * * *", {0}, {9, 13, 17}, None, None, None, False, False),
    ("0 0 1,15 * *", {0}, {0}, {1, 15}, None, None, True, False),
    ("0 0 * JAN,jul *", None, None, None, {1, 7}, None, False, False),
    ("0 0 * * MON-FRI", None, None, None, None, {1, 2, 3, 4, 5}, False, True),
    ("0 0 * * 7", None, None, None, None, {0}, False, True),
    ("0 0 * * 5-7", None, None, None, None, {5, 6, 0}, False, True),
    ("0 0 ? * sun", None, None, None, None, {0}, False, True),
    ("0 0 */2 * *", None, None, set(range(1, 32, 2)), None, None, False, False),
    ("0\t0  1 1 *", {0}, {0}, {1}, {1}, None, True, False),
    ("@hourly", {0}, set(range(24)), None, None, None, False, False),
    ("@daily", {0}, {0}, None, None, None, False, False),
    ("@midnight", {0}, {0}, None, None, None, False, False),
    ("@weekly", {0}, {0}, None, None, {0}, False, True),
    ("@monthly", {0}, {0}, {1}, None, None, True, False),
    ("@yearly", {0}, {0}, {1}, {1}, None, True, False),
    ("@ANNUALLY", {0}, {0}, {1}, {1}, None, True, False),
    ("0 0 29 2 *", {0}, {0}, {29}, {2}, None, True, False),
    ("0 0 31 1-2 *", None, None, {31}, {1, 2}, None, True, False),
]


@pytest.mark.parametrize(("text", "minutes", "hours", "doms", "months", "dows", "dom_r", "dow_r"), ACCEPTED)
def test_accepted_expressions_and_their_meaning(text, minutes, hours, doms, months, dows, dom_r, dow_r):
    assert re.match(CRON_PATTERN, text)
    expression = parse_cron(text)
    for expected, actual in (
        (minutes, expression.minutes),
        (hours, expression.hours),
        (doms, expression.days_of_month),
        (months, expression.months),
        (dows, expression.days_of_week),
    ):
        if expected is not None:
            assert actual == expected
    assert expression.day_of_month_restricted is dom_r
    assert expression.day_of_week_restricted is dow_r


REFUSED = [
    # (expression, the pattern already refuses it, words the message must contain)
    ("", True, "five fields"),
    ("not a cron", True, "five fields"),
    ("* * * *", True, "five fields"),
    ("* * * * * *", True, "five fields"),
    ("60 * * * *", True, "five fields"),
    ("* 24 * * *", True, "five fields"),
    ("* * 0 * *", True, "five fields"),
    ("* * 32 * *", True, "five fields"),
    ("* * * 13 *", True, "five fields"),
    ("* * * * 8", True, "five fields"),
    ("*/0 * * * *", True, "five fields"),
    ("? * * * *", True, "five fields"),
    ("1,,2 * * * *", True, "five fields"),
    ("@every 1h", True, "five fields"),
    ("@reboot", True, "five fields"),
    (" 0 2 * * *", True, "five fields"),
    ("0 2 * * * ", True, "five fields"),
    ("TZ=UTC 0 2 * * *", True, "five fields"),
    ("0 0 * FOO *", True, "five fields"),
    ("5-1 * * * *", False, "minute field: range '5-1' starts after it ends"),
    ("0 0 * * FRI-MON", False, "day-of-week field: range 'FRI-MON' starts after it ends"),
    ("0 0 30 2 *", False, "no listed month has day 30"),
    ("0 0 31 4,6,9,11 *", False, "no listed month has day 31"),
]


@pytest.mark.parametrize(("text", "pattern_refuses", "words"), REFUSED)
def test_refused_expressions_name_the_problem(text, pattern_refuses, words):
    assert (re.match(CRON_PATTERN, text) is None) is pattern_refuses
    with pytest.raises(CronError, match=re.escape(words)):
        parse_cron(text)


def test_both_day_fields_restricted_means_either():
    expression = parse_cron("0 0 13 * FRI")
    assert expression.day_of_month_restricted and expression.day_of_week_restricted


def test_impossible_day_is_accepted_when_weekday_is_also_given():
    # "the 30th of February or any Monday" runs on Mondays (cron's OR of the two day fields).
    assert parse_cron("0 0 30 2 MON").days_of_week == frozenset({1})
