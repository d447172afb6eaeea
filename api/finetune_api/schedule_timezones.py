"""The IANA time zone names FineTuneSchedule.spec.timeZone accepts.

Kubernetes CronJob refuses an unknown time zone when the object is created (the API server loads
it). A CRD cannot load a zone, so the CRD carries the list of known names in a CEL rule
(`self in [...]`) and the model checks the same list, then loads the zone with `zoneinfo`. The list
is the IANA database of the Python `tzdata` package when it is installed (pinned, so generating the
CRD gives the same bytes everywhere), else the system's zoneinfo database.
"""

import functools
import importlib.resources
import re
import zoneinfo

DEFAULT_TIME_ZONE = "UTC"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
TIME_ZONE_MAX_LENGTH = 64
TIME_ZONE_MESSAGE = "must be an IANA time zone name such as Europe/Berlin, America/New_York or UTC"

_PATTERN_RE = re.compile(TIME_ZONE_PATTERN)


class TimeZoneError(ValueError):
    """The time zone is not a known IANA name."""


def _tzdata_names() -> frozenset[str] | None:
    try:
        zones = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return frozenset(line.strip() for line in zones.splitlines() if line.strip())


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """Every accepted name, sorted; names the CEL rule could not express are left out."""
    names = _tzdata_names() or frozenset(zoneinfo.available_timezones())
    return tuple(
        sorted(n for n in names if len(n) <= TIME_ZONE_MAX_LENGTH and _PATTERN_RE.match(n) and "'" not in n)
    )


def time_zone_cel() -> str:
    """The CRD rule: the name is one of `time_zone_names()`."""
    return "self in [" + ", ".join(f"'{name}'" for name in time_zone_names()) + "]"


def check_time_zone(name: str) -> str:
    """Return `name` when it is a known IANA zone that loads; raise TimeZoneError otherwise."""
    if name not in time_zone_names():
        raise TimeZoneError(f"{TIME_ZONE_MESSAGE}; {name!r} is not in the IANA time zone database")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise TimeZoneError(f"{TIME_ZONE_MESSAGE}; {name!r} cannot be loaded here: {error}") from None
    return name
