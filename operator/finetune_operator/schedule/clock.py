"""Where the schedule reconciler gets "now" from: the system clock, or a file for tests.

Scheduling decisions are pure functions of `now` (plan.py); only this module reads a clock. Tests of
a running operator cannot wait for real minutes or nights, so the operator can be pointed at a file
holding an RFC 3339 time that the test rewrites to move time forward:

    FINETUNE_OPERATOR_FAKE_CLOCK_FILE=/tmp/clock   (file content e.g. 2026-03-01T01:59:30Z)

This is a test-only knob: never set it in a real deployment (the Helm chart does not). A missing or
unreadable file is an error, not a silent fallback to the real time, so a broken test setup shows.
"""

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

FAKE_CLOCK_ENV = "FINETUNE_OPERATOR_FAKE_CLOCK_FILE"

Clock = Callable[[], datetime]
"""A clock returns the current time, aware."""


class ClockError(RuntimeError):
    """The fake clock file cannot be read or parsed."""


def system_clock() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


def parse_clock_text(text: str, source: str) -> datetime:
    """An RFC 3339 time with a zone (Z or +hh:mm) from the clock file's content."""
    stripped = text.strip()
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ClockError(
            f"{source}: {stripped!r} is not an RFC 3339 time with a zone, e.g. 2026-03-01T02:00:00Z"
        )
    return moment.astimezone(UTC)


def file_clock(path: Path) -> Clock:
    """A clock that reads `path` on every call."""

    def now() -> datetime:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ClockError(f"{FAKE_CLOCK_ENV}={path}: cannot read the fake clock file: {error}") from None
        return parse_clock_text(text, f"{FAKE_CLOCK_ENV}={path}")

    return now


def clock_from_env(environ: Mapping[str, str] = os.environ) -> Clock:
    """The fake file clock when FINETUNE_OPERATOR_FAKE_CLOCK_FILE is set, else the system clock."""
    path = environ.get(FAKE_CLOCK_ENV)
    return file_clock(Path(path)) if path else system_clock
