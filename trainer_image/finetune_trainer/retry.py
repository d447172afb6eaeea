"""Storage faults: which are permanent, which pass, and riding out the ones that pass.

Why: a multi-day job must not fail for good because the store answered 503 once. The operator
fails a job at once on exit 78, so only faults that no amount of waiting can fix may lead there:
the object does not exist, the store's policy denies the request, or the bytes do not parse.
Everything a store does while it is overloaded, restarting or unreachable — 5xx, 408/429,
SlowDown, timeouts, refused or reset connections, an expired session token — is *transient*: the
trainer retries it here with capped exponential backoff and jitter, logging every retry, for a
bounded time (``FINETUNE_STORAGE_RETRY_SECONDS``, default 600), and then gives up with
:class:`StorageUnavailable`, which exits retryable so the operator restarts the gang from the last
committed checkpoint.

:func:`classify` is pure: it reads the exception chain (s3fs wraps botocore's ``ClientError``
in ``OSError`` subclasses; aiohttp and botocore have their own connection errors) and prefers
protocol evidence (an S3 error code, an HTTP status) over the Python type, so an ``ExpiredToken``
that s3fs surfaces as ``PermissionError`` still counts as transient. Class names are matched
along the MRO instead of importing botocore/aiohttp, so the rules also cover the gs/az backends'
errors that carry an HTTP status and never import a backend the image lacks.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS_ENV = "FINETUNE_STORAGE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 600.0


class Fault(Enum):
    """What a storage error means for the job."""

    NOT_FOUND = "not-found"  # permanent: the object or bucket does not exist
    DENIED = "denied"  # permanent: the store's policy or the credentials refuse the request
    INVALID = "invalid"  # permanent: the bytes or the request cannot be parsed
    TRANSIENT = "transient"  # retry: the store is busy, restarting or unreachable
    UNKNOWN = "unknown"  # not retried here, but exits retryable (never 78)

    @property
    def permanent(self) -> bool:
        return self in (Fault.NOT_FOUND, Fault.DENIED, Fault.INVALID)


class StorageUnavailable(Exception):
    """Transient storage errors outlasted the retry budget: the job should restart later."""

    def __init__(self, what: str, attempts: int, seconds: float, last: BaseException) -> None:
        super().__init__(
            f"storage unavailable: {what} failed {attempts} times over {seconds:.0f}s "
            f"(last error: {type(last).__name__}: {last}); will be retried by the operator"
        )
        self.what = what
        self.attempts = attempts
        self.last = last


# S3 (and S3-compatible) error codes. Anything listed transient is what a store says while it is
# overloaded or restarting, or about a credential that a refresh fixes.
_S3_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchUpload", "NoSuchVersion", "404"}
_S3_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidObjectState",
    "MissingSecurityHeader",
    "403",
}
_S3_TRANSIENT = {
    "ExpiredToken",
    "ExpiredTokenException",
    "TokenRefreshRequired",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "OperationAborted",
    "XAmzContentSHA256Mismatch",
    "BadDigest",
    "IncompleteBody",
}
_S3_INVALID = {"InvalidBucketName", "KeyTooLongError", "InvalidURI", "MalformedXML"}

# Exception classes (matched by name along the MRO) of botocore, aiohttp, fsspec, http.client
# and the cloud SDKs that mean "the connection or the transfer broke", never "you asked wrongly".
_TRANSIENT_CLASSES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "HTTPClientError",
    "ResponseStreamingError",
    "ProxyConnectionError",
    "CredentialRetrievalError",
    "TokenRetrievalError",
    "ClientConnectionError",
    "ClientOSError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "ClientPayloadError",
    "FSTimeoutError",
    "IncompleteRead",
    "RemoteDisconnected",
    "ServiceRequestError",
    "ServiceResponseError",
    "TransportError",
}
_DENIED_CLASSES = {"NoCredentialsError", "PartialCredentialsError"}

# obstore's exception classes (obstore.exceptions, matched only for that module). GenericError is
# what object_store reports once its own short retries of a connection error, timeout or 5xx are
# spent (objstore.py keeps them short): transient.
_OBSTORE_FAULTS = {
    "NotFoundError": Fault.NOT_FOUND,
    "PermissionDeniedError": Fault.DENIED,
    "UnauthenticatedError": Fault.DENIED,
    "InvalidPathError": Fault.INVALID,
    "UnknownConfigurationKeyError": Fault.INVALID,
    "NotSupportedError": Fault.INVALID,
    "GenericError": Fault.TRANSIENT,
    "JoinError": Fault.TRANSIENT,
}

_TRANSIENT_ERRNOS = {
    errno.EBUSY,
    errno.EAGAIN,
    errno.ETIMEDOUT,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    getattr(errno, "EREMOTEIO", errno.EIO),
}

_PROTOCOL = 2  # an S3 error code or an HTTP status: what the store itself said
_TYPE = 1  # the Python type or errno of the exception


def _chain(exc: BaseException, limit: int = 12) -> Iterator[BaseException]:
    """The exception, then its causes and contexts (each once), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status_fault(status: int) -> Fault | None:
    if status in (408, 429) or 500 <= status <= 599:
        return Fault.TRANSIENT
    if status == 404:
        return Fault.NOT_FOUND
    if status in (401, 403):
        return Fault.DENIED
    if 400 <= status <= 499:
        return Fault.UNKNOWN
    return None


def _protocol_evidence(exc: BaseException) -> Fault | None:
    """What the store said: botocore's response dict, or an HTTP status attribute."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        if code in _S3_TRANSIENT:
            return Fault.TRANSIENT
        if code in _S3_NOT_FOUND:
            return Fault.NOT_FOUND
        if code in _S3_DENIED:
            return Fault.DENIED
        if code in _S3_INVALID:
            return Fault.INVALID
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return _status_fault(status)
    for attribute in ("status", "status_code", "code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            return _status_fault(value)
    return None


def _type_evidence(exc: BaseException) -> Fault | None:
    names = _class_names(exc)
    if type(exc).__module__.startswith("obstore"):
        for name in type(exc).__mro__:
            if name.__name__ in _OBSTORE_FAULTS:
                return _OBSTORE_FAULTS[name.__name__]
    if names & _TRANSIENT_CLASSES:
        return Fault.TRANSIENT
    if names & _DENIED_CLASSES:
        return Fault.DENIED
    if isinstance(exc, TimeoutError | ConnectionError):
        return Fault.TRANSIENT
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return Fault.NOT_FOUND
    if isinstance(exc, PermissionError):
        return Fault.DENIED
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _TRANSIENT_ERRNOS:
            return Fault.TRANSIENT
        if exc.errno == errno.ENOENT:
            return Fault.NOT_FOUND
        if exc.errno in (errno.EACCES, errno.EPERM):
            return Fault.DENIED
    if isinstance(exc, ValueError | csv.Error):  # JSON, UTF-8, Parquet (ArrowInvalid), CSV
        return Fault.INVALID
    return None


def classify(exc: BaseException) -> Fault:
    """What a storage exception means (pure; see the module docstring for the rules)."""
    best: tuple[int, Fault] | None = None
    for link in _chain(exc):
        for strength, evidence in ((_PROTOCOL, _protocol_evidence(link)), (_TYPE, _type_evidence(link))):
            if evidence is not None and (best is None or strength > best[0]):
                best = (strength, evidence)
        if best is not None and best[0] == _PROTOCOL:
            break
    return best[1] if best is not None else Fault.UNKNOWN


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in time and in attempts."""

    budget_seconds: float = DEFAULT_RETRY_SECONDS
    first_delay: float = 0.5
    max_delay: float = 20.0
    max_attempts: int = 1000

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get(RETRY_SECONDS_ENV)
        if not raw:
            return cls()
        try:
            budget = float(raw)
        except ValueError:
            log.warning(
                f"{RETRY_SECONDS_ENV}={raw!r} is not a number of seconds; using {DEFAULT_RETRY_SECONDS}"
            )
            return cls()
        return cls(budget_seconds=max(budget, 0.0))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based): U(ceiling/2, ceiling)."""
        ceiling = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        return ceiling / 2 + rng.random() * ceiling / 2


def call_with_retries(
    action: Callable[[], T],
    what: str,
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """Run ``action``; retry it while it fails transiently and the budget lasts.

    Permanent and unknown errors are re-raised at once, untouched (callers turn permanent ones
    into a ConfigError naming the spec field). Transient ones are logged and retried; when the
    next wait would pass the budget, :class:`StorageUnavailable` is raised from the last error.
    """
    policy = policy or RetryPolicy.from_env()
    rng = rng or random.Random()
    started = clock()
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if classify(exc) is not Fault.TRANSIENT:
                raise
            attempt += 1
            elapsed = clock() - started
            wait = policy.delay(attempt, rng)
            if attempt >= policy.max_attempts or elapsed + wait > policy.budget_seconds:
                log.error(
                    "storage still unavailable; giving up",
                    extra={"fields": {"operation": what, "attempts": attempt, "reason": repr(exc)}},
                )
                raise StorageUnavailable(what, attempt, elapsed, exc) from exc
            log.warning(
                "storage error; retrying",
                extra={
                    "fields": {
                        "operation": what,
                        "attempt": attempt,
                        "wait_seconds": round(wait, 2),
                        "reason": f"{type(exc).__name__}: {exc}",
                    }
                },
            )
            sleep(wait)
