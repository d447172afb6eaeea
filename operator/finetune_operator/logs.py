"""JSON logs, one object per line (docs/architecture.md "Conventions"), so that log pipelines can
filter by job and attempt.

Kopf logs through the standard `logging` module and attaches the object it works on in `extra`
(`k8s_ref`); we flatten that into `namespace`/`job` fields. Our own code passes `extra={"job": ...,
"namespace": ..., "attempt": ...}`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_PASSTHROUGH = ("namespace", "job", "attempt", "action", "result", "reason")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, and known context fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            if ref.get("namespace"):
                entry["namespace"] = ref["namespace"]
            if ref.get("name"):
                entry["job"] = ref["name"]
        for key in _PASSTHROUGH:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Route every logger (ours and Kopf's) to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp").setLevel(max(logging.WARNING, root.level))
    # Kopf logs "Handler ... succeeded" for every watch event; our controller logs what it does instead.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, root.level))
