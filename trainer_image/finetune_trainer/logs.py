"""JSON logs: one object per line with job, rank and step (docs/architecture.md "Conventions").

Log collectors (and the e2e tests) parse the trainer's output line by line; a plain-text line from
a library would still be a line, but everything we emit ourselves is a JSON object so that a
failure can be attributed to a rank and a step without guessing.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_CONTEXT: dict[str, Any] = {"job": os.environ.get("FINETUNE_JOB_NAME", ""), "rank": 0, "step": 0}


def set_context(**fields: Any) -> None:
    """Update the fields every log line carries (job, rank, step)."""
    _CONTEXT.update(fields)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object: time, level, logger, message, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_CONTEXT,
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str = "INFO", transformers: bool = True) -> None:
    """Send our loggers and the HF/torch ones through one JSON handler on stderr.

    ``transformers=False`` leaves transformers' own logging alone (and unimported): for the
    checkpoint commit process, which never loads it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("transformers", "accelerate", "torch", "peft", "s3fs", "fsspec", "botocore", "aiobotocore"):
        lib = logging.getLogger(noisy)
        lib.handlers[:] = []
        lib.propagate = True
        lib.setLevel(logging.WARNING)
    if not transformers:
        return
    try:  # transformers installs its own handler; route it through ours
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.enable_propagation()
        hf_logging.set_verbosity_warning()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - only when transformers is absent
        pass


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Log an info line with structured fields merged into the JSON object."""
    logger.info(message, extra={"fields": fields})
