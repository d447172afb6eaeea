"""Kubernetes timestamps: one parser and one formatter for every controller.

The API server writes `metav1.Time` as RFC 3339 in UTC with a trailing Z and whole seconds
("2026-03-01T02:00:00Z"), and that is the form status fields written here must take. Reading is
lenient in one way only, the same for every caller: a stamp without a zone is taken as UTC (that is
what Kubernetes means by its times; Kopf and clients may hand over naive datetimes). Anything that
is not a timestamp reads as None, so one malformed field cannot break a whole reconcile pass.
"""

from __future__ import annotations

import datetime
from typing import Any


def parse_time(value: Any) -> datetime.datetime | None:
    """An aware datetime from an RFC 3339 string or a datetime; None when absent or not a time."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a Z, whole seconds: the form Kubernetes writes."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
