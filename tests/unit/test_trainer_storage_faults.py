"""Which storage errors are permanent (exit 78) and which are retried (pure rules of retry.py).

The exceptions are the real ones the S3 stack raises: botocore's ClientError as s3fs translates
it (so an ExpiredToken arrives as a PermissionError), botocore's and aiohttp's connection errors,
and the builtin OSError family.
"""

from __future__ import annotations

import errno
import json
import random

import pytest
from aiohttp import ClientConnectorError, ServerDisconnectedError
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from s3fs.errors import translate_boto_error

from finetune_trainer.retry import Fault, RetryPolicy, StorageUnavailable, call_with_retries, classify


def client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": f"{code} said the store"}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "GetObject")


def as_s3fs(code: str, status: int) -> BaseException:
    """What s3fs raises for a ClientError: an OSError subclass whose cause is the ClientError."""
    return translate_boto_error(client_error(code, status))


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, Fault.NOT_FOUND),
        ("NoSuchBucket", 404, Fault.NOT_FOUND),
        ("AccessDenied", 403, Fault.DENIED),
        ("InvalidAccessKeyId", 403, Fault.DENIED),
        ("SignatureDoesNotMatch", 403, Fault.DENIED),
        ("ExpiredToken", 400, Fault.TRANSIENT),  # s3fs: PermissionError, but a refresh fixes it
        ("TokenRefreshRequired", 400, Fault.TRANSIENT),
        ("InternalError", 500, Fault.TRANSIENT),
        ("ServiceUnavailable", 503, Fault.TRANSIENT),
        ("SlowDown", 503, Fault.TRANSIENT),
        ("RequestTimeout", 400, Fault.TRANSIENT),
        ("SomethingNew", 502, Fault.TRANSIENT),  # an unknown code: the status decides
        ("SomethingNew", 429, Fault.TRANSIENT),
        ("SomethingNew", 404, Fault.NOT_FOUND),
        ("SomethingNew", 409, Fault.UNKNOWN),  # other 4xx: not waited out, but never exit 78
        ("InvalidBucketName", 400, Fault.INVALID),
    ],
)
def test_s3_error_codes(code, status, expected):
    assert classify(client_error(code, status)) is expected
    assert classify(as_s3fs(code, status)) is expected
    wrapped = raised_from(RuntimeError("checkpoint upload failed"), as_s3fs(code, status))
    assert classify(wrapped) is expected


def test_s3fs_surfaces_expired_token_as_permission_error_yet_it_is_transient():
    translated = as_s3fs("ExpiredToken", 400)
    assert isinstance(translated, PermissionError)
    assert classify(translated) is Fault.TRANSIENT
    assert classify(PermissionError(errno.EACCES, "local file")) is Fault.DENIED


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9/b/k"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        TimeoutError("timed out"),
        ServerDisconnectedError(),
        ClientConnectorError(
            ConnectionKey("127.0.0.1", 9, False, True, None, None, None),
            OSError(errno.ECONNREFUSED, "refused"),
        ),
        OSError(errno.EBUSY, "ServiceUnavailable"),
        OSError(errno.EREMOTEIO, "We encountered an internal error, please try again."),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_and_timeout_errors_are_transient(exc):
    assert classify(exc) is Fault.TRANSIENT
    assert classify(raised_from(OSError(errno.EIO, "wrapped"), exc)) is Fault.TRANSIENT


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError(errno.ENOENT, "no such file"), Fault.NOT_FOUND),
        (IsADirectoryError(errno.EISDIR, "a directory"), Fault.NOT_FOUND),
        (NoCredentialsError(), Fault.DENIED),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), Fault.INVALID),
        (json.JSONDecodeError("Expecting value", "x", 0), Fault.INVALID),
        (RuntimeError("a bug"), Fault.UNKNOWN),
        (OSError(errno.ENOSPC, "disk full"), Fault.UNKNOWN),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.value,
)
def test_other_errors(exc, expected):
    assert classify(exc) is expected
    assert expected.permanent == (expected in (Fault.NOT_FOUND, Fault.DENIED, Fault.INVALID))


def test_protocol_evidence_beats_the_python_type_anywhere_in_the_chain():
    # An outer FileNotFoundError-looking wrapper around a 503 is still a 503.
    assert classify(raised_from(FileNotFoundError("lookup failed"), client_error("SlowDown", 503))) is (
        Fault.TRANSIENT
    )


class FakeClock:
    """A clock the retry loop advances through its sleep function (no real waiting in unit tests)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_transient_errors_are_retried_until_the_store_answers():
    clock = FakeClock()
    outcomes: list[BaseException | str] = [as_s3fs("ServiceUnavailable", 503), ConnectionResetError(), "ok"]

    def action() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    result = call_with_retries(
        action, "read x", RetryPolicy(budget_seconds=60), sleep=clock.sleep, clock=lambda: clock.now
    )
    assert result == "ok"
    assert len(clock.sleeps) == 2


def test_permanent_and_unknown_errors_are_not_retried():
    for error in (as_s3fs("AccessDenied", 403), FileNotFoundError("gone"), RuntimeError("bug")):
        clock = FakeClock()

        def action(error: BaseException = error) -> None:
            raise error

        with pytest.raises(type(error)):
            call_with_retries(action, "read x", sleep=clock.sleep, clock=lambda c=clock: c.now)
        assert clock.sleeps == []


def test_the_budget_bounds_the_retries_and_then_storage_is_unavailable():
    clock = FakeClock()

    def action() -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k")

    policy = RetryPolicy(budget_seconds=30, first_delay=1, max_delay=8)
    with pytest.raises(StorageUnavailable) as raised:
        call_with_retries(action, "upload y", policy, sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.now <= 30
    assert raised.value.attempts == len(clock.sleeps) + 1
    assert "upload y" in str(raised.value) and "EndpointConnectionError" in str(raised.value)
    assert isinstance(raised.value.__cause__, EndpointConnectionError)
    assert classify(raised.value) is Fault.TRANSIENT  # a retryable exit, never 78


def test_backoff_grows_to_its_cap_with_jitter():
    policy = RetryPolicy(first_delay=0.5, max_delay=20)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(20, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 20


def test_policy_from_env(monkeypatch):
    monkeypatch.setenv("FINETUNE_STORAGE_RETRY_SECONDS", "45")
    assert RetryPolicy.from_env().budget_seconds == 45
    monkeypatch.setenv("FINETUNE_STORAGE_RETRY_SECONDS", "soon")
    assert RetryPolicy.from_env().budget_seconds == RetryPolicy().budget_seconds


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (as_s3fs("NoSuchKey", 404), True),
        (as_s3fs("AccessDenied", 403), True),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), True),
        (as_s3fs("ServiceUnavailable", 503), False),
        (as_s3fs("ExpiredToken", 400), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k"), False),
        (RuntimeError("a bug"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_a_dataset_read_error_is_exit_78_only_when_permanent(exc, permanent):
    from finetune_trainer.data import read_error
    from finetune_trainer.errors import ConfigError

    error = read_error("spec.dataset.train", "s3://b/train.jsonl", exc)
    if permanent:
        assert isinstance(error, ConfigError)
        assert "spec.dataset.train" in str(error) and "s3://b/train.jsonl" in str(error)
    else:
        assert error is exc
    unavailable = StorageUnavailable("read s3://b/train.jsonl", 5, 600, exc)
    if not permanent:
        assert read_error("spec.dataset.train", "s3://b/train.jsonl", unavailable) is unavailable


def test_obstore_errors():
    import obstore.exceptions as obstore_errors

    assert classify(obstore_errors.GenericError("PUT failed after 3 retries: error sending request")) is (
        Fault.TRANSIENT
    )
    assert classify(obstore_errors.NotFoundError("no such key")) is Fault.NOT_FOUND
    assert classify(obstore_errors.PermissionDeniedError("denied")) is Fault.DENIED
    assert classify(obstore_errors.UnauthenticatedError("bad key")) is Fault.DENIED
    assert classify(obstore_errors.InvalidPathError("bad path")) is Fault.INVALID


def test_obstore_options_follow_the_s3fs_environment():
    from finetune_trainer.objstore import split_s3_uri, store_options

    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:26410",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
    }
    assert store_options(env) == {
        "endpoint": "http://127.0.0.1:26410",
        "virtual_hosted_style_request": False,
        "access_key_id": "key",
        "secret_access_key": "secret",
        "region": "eu-west-1",
    }
    assert store_options({}) == {"region": "us-east-1"}
    assert split_s3_uri("s3://bucket/a/b/c.pt") == ("bucket", "a/b/c.pt")
    with pytest.raises(ValueError, match="no bucket or no key"):
        split_s3_uri("s3://bucket")
