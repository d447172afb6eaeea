"""A test-only hook: SIGKILL the operator at a named point of a reconcile pass.

Why: the fault campaign (bench/faults.py, `make faults`) must kill the operator *exactly* between
two writes of one pass — before or after the status write, between child creations — to show that
a restarted operator never creates a child twice. A timer cannot hit those points reliably.

Set ``FINETUNE_OPERATOR_TEST_CRASH_AT`` to one of :data:`POINTS`; the first pass that reaches it
kills the process with SIGKILL (no cleanup, as a node failure or the OOM killer would). Never set it
in a deployment: the Helm chart does not, and an unknown value is ignored.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "FINETUNE_OPERATOR_TEST_CRASH_AT"
POINTS = (
    "before-status-write",
    "after-status-write",
    "after-create-service",
    "after-create-configmap",
    "after-create-job",
)
logger = logging.getLogger(__name__)


def crash_point(name: str) -> None:
    """SIGKILL this process when the test hook names ``name``; otherwise nothing."""
    if os.environ.get(ENV) == name:
        logger.warning("test hook %s=%s: SIGKILL now", ENV, name)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
