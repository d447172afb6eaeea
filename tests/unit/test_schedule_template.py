"""Placeholders of the job template: expansion, refusal, and agreement of the model's check with the
CRD's CEL pattern (TEXT_PATTERN), so `kubectl apply` and the operator refuse the same texts."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from finetune_api.schedule_template import (
    TEXT_PATTERN,
    PlaceholderError,
    PlaceholderValues,
    check_text,
    render_text,
)

BERLIN_NIGHT = PlaceholderValues(
    scheduled_time=datetime(2026, 3, 1, 1, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin")),
    job_name="nightly-29537580",
)

RENDERED = [
    ("s3://data/${scheduledDate}/train.jsonl", "s3://data/2026-03-01/train.jsonl"),
    ("s3://data/${scheduledTime}/x", "s3://data/2026-03-01T01:00:00Z/x"),
    ("s3://data/${scheduledTime:%Y/%m/%d/%H}", "s3://data/2026/03/01/02"),
    ("s3://data/${scheduledTime:week-%G-%V}", "s3://data/week-2026-09"),
    ("s3://data/${scheduledTime:%a-%b-%z-%Z-%%}", "s3://data/Sun-Mar-+0100-CET-%"),
    ("s3://models/${jobName}", "s3://models/nightly-29537580"),
    ("price $5 and $$ and $${scheduledDate}", "price $5 and $ and ${scheduledDate}"),
    ("no placeholder", "no placeholder"),
    ("trailing $", "trailing $"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), RENDERED)
def test_render(text, expected):
    assert render_text(text, BERLIN_NIGHT) == expected
    assert re.match(TEXT_PATTERN, text)


REFUSED = [
    ("s3://data/${date}", "${date}: unknown or malformed placeholder"),
    ("s3://data/${scheduledDate:%Y}", "${scheduledDate:%Y}: unknown"),
    ("s3://data/${jobName:x}", "${jobName:x}: unknown"),
    ("s3://data/${ScheduledTime}", "${ScheduledTime}: unknown"),
    ("s3://data/${scheduledTime:%s}", "may use only the strftime directives"),
    ("s3://data/${scheduledTime:}", "may use only the strftime directives"),
    ("s3://data/${scheduledTime:%Y-%}", "may use only the strftime directives"),
    ("s3://data/${scheduledDate", "'${' without a closing '}'"),
    ("s3://data/${}", "${}: unknown"),
    ("s3://${a{b}}", "'${' without a closing '}'"),
]


@pytest.mark.parametrize(("text", "words"), REFUSED)
def test_refused(text, words):
    with pytest.raises(PlaceholderError, match=re.escape(words)):
        check_text(text)
    with pytest.raises(PlaceholderError):
        render_text(text, BERLIN_NIGHT)
    assert re.match(TEXT_PATTERN, text) is None


def test_cel_pattern_and_model_agree_on_many_texts():
    alphabet = ["$", "{", "}", "scheduledDate", "scheduledTime", ":", "%Y", "%q", "jobName", "x", "/", "%"]
    texts = {""}
    for _ in range(4):
        texts |= {t + a for t in texts for a in alphabet}
    for text in texts:
        try:
            check_text(text)
            accepted = True
        except PlaceholderError:
            accepted = False
        assert accepted is (re.match(TEXT_PATTERN, text) is not None), text
