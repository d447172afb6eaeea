"""Wait for a condition with a deadline: the only way the local cluster synchronises.

Why: fixed sleeps make startup slow on fast machines and flaky on slow ones. Every wait here polls
a real condition (an HTTP health endpoint, a Node condition, a pod phase) until a deadline and
then fails with a message naming what was awaited and where to look.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not come true before its deadline."""


class StopWaiting(RuntimeError):
    """Raised by a check when the condition can never come true (e.g. the process died)."""


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    hint: str = "",
    poll: float = 0.1,
) -> T:
    """Call ``check`` until it returns something truthy; return that, or raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except StopWaiting:
            raise
        except Exception as error:  # a check that raises is a check that is not true yet
            last_error = error
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            extra = f"; {hint}" if hint else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}{extra}")
        time.sleep(poll)


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200 (a health endpoint)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def insecure_context() -> ssl.SSLContext:
    """TLS context for health endpoints with self-signed serving certificates on loopback."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
