"""Placeholders in a FineTuneSchedule's job template: the grammar, its check and its expansion.

A nightly retraining run usually reads the data of its own night (`s3://data/2026-03-01/train.jsonl`)
and writes a model of its own. The scheduled time of each run is therefore available to the job
template through `${...}` placeholders:

    ${scheduledTime}           the scheduled time in UTC, RFC 3339 (2026-03-01T01:00:00Z)
    ${scheduledTime:FORMAT}    the scheduled time in the schedule's time zone, formatted with the
                               strftime directives %Y %y %m %d %H %M %S %j %a %A %b %B %u %w %G %V
                               %z %Z and %% (e.g. ${scheduledTime:%Y/%m/%d})
    ${scheduledDate}           the scheduled date in the schedule's time zone (2026-03-01)
    ${jobName}                 the name of the FineTuneJob created for the run
    $$                         a literal $ (so $${x} is the text ${x})

Placeholders are expanded only in the fields listed in `PLACEHOLDER_SPEC_FIELDS` and in the values
of jobTemplate.metadata.labels and .annotations: those are the fields where a date makes sense, and a
fixed list lets the CRD refuse an unknown placeholder at `kubectl apply` with one CEL `matches` per
field (`TEXT_PATTERN`); CEL cannot inspect every string of an arbitrary object. `${` anywhere else in
the template is refused by the model (the operator reports it on the schedule's Ready condition).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime

PLACEHOLDER_SPEC_FIELDS: tuple[tuple[str, ...], ...] = (
    ("model", "uri"),
    ("dataset", "train"),
    ("dataset", "validation"),
    ("dataset", "test"),
    ("checkpoint", "uri"),
    ("output", "uri"),
)
"""camelCase paths inside jobTemplate.spec whose text may hold placeholders."""

STRFTIME_DIRECTIVES = "YymdHMSjaAbBuwGVzZ%"
_FORMAT_PATTERN = r"(?:[^{}$%]|%[" + STRFTIME_DIRECTIVES + r"])+"
_PLACEHOLDER_BODY = r"(?:scheduledTime(?::" + _FORMAT_PATTERN + r")?|scheduledDate|jobName)"
TEXT_PATTERN = r"^(?:[^$]|\$\$|\$\{" + _PLACEHOLDER_BODY + r"\}|\$(?:[^{$]|$))*$"
"""A text whose every `${...}` is a known placeholder (RE2 and Python `re` alike)."""

TEXT_CEL = "self.matches('" + TEXT_PATTERN.replace("\\", "\\\\") + "')"
TEXT_MESSAGE = (
    "unknown or malformed placeholder; use ${scheduledTime}, ${scheduledTime:<strftime format>}, "
    "${scheduledDate} or ${jobName}, and $$ for a literal $"
)

_TOKEN = re.compile(r"\$\$|\$\{(?P<body>[^{}]*)\}|\$\{")
_FORMAT_RE = re.compile(_FORMAT_PATTERN)


class PlaceholderError(ValueError):
    """A template text holds an unknown or malformed placeholder."""


@dataclass(frozen=True)
class PlaceholderValues:
    """What the placeholders of one run expand to.

    scheduled_time: the run's scheduled time, aware and already in the schedule's time zone.
    job_name: the name of the FineTuneJob created for the run.
    """

    scheduled_time: datetime
    job_name: str


def _check_body(body: str) -> None:
    name, colon, time_format = body.partition(":")
    if name in ("scheduledDate", "jobName") and not colon:
        return
    if name == "scheduledTime":
        if not colon or _FORMAT_RE.fullmatch(time_format):
            return
        raise PlaceholderError(
            f"${{{body}}}: the format may use only the strftime directives "
            + " ".join(f"%{d}" for d in STRFTIME_DIRECTIVES)
            + " and no '{', '}' or '$'"
        )
    raise PlaceholderError(f"${{{body}}}: {TEXT_MESSAGE}")


def check_text(text: str) -> str:
    """Return `text` when each of its placeholders is known; raise PlaceholderError otherwise."""
    for token in _TOKEN.finditer(text):
        if token.group(0) == "$$":
            continue
        if token.group("body") is None:
            raise PlaceholderError(f"'${{' without a closing '}}' in {text!r}; {TEXT_MESSAGE}")
        _check_body(token.group("body"))
    return text


def has_placeholder_syntax(text: str) -> bool:
    """Whether `text` contains `${` (which only placeholder fields may hold)."""
    return "${" in text


def _expand(body: str, values: PlaceholderValues) -> str:
    name, colon, time_format = body.partition(":")
    if name == "jobName":
        return values.job_name
    if name == "scheduledDate":
        return values.scheduled_time.strftime("%Y-%m-%d")
    if colon:
        return values.scheduled_time.strftime(time_format)
    return values.scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_text(text: str, values: PlaceholderValues) -> str:
    """Expand every placeholder of `text` (checked first, so an unknown one raises PlaceholderError)."""
    check_text(text)

    def replace(token: re.Match[str]) -> str:
        if token.group(0) == "$$":
            return "$"
        return _expand(token.group("body"), values)

    return _TOKEN.sub(replace, text)
