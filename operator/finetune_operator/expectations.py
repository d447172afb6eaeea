"""Expectations: what a pass created or deleted and the watch-fed cache has not shown yet (issue 16).

Why (controller-runtime's ControllerExpectations, by name instead of by count): a pass reads its
children from the cache, and the cache lags the API server by one watch event. Right after a pass
created attempt 3's Job, the next pass could still see no such Job and decide to create it (and
announce it) again; right after a delete, it could delete again. So each create and delete is
recorded here, and a pass for a key with an unmet expectation does not decide at all: the watch
event that meets it queues the key again. An expectation also ends after `ttl` seconds (a lost
event, or a create refused for a reason the cache will never show), so nothing waits forever.

After an operator crash there is nothing to expect: the new process's cache starts from a full
list, which already shows everything the dead one created. Fixed child names make a create that
races anyway answer "already exists", never a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

Key = tuple[str, str]


class Cache(Protocol):
    """What expectations ask of the watch-fed cache (job/cache.py)."""

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def mark(self, kind: str) -> int: ...

    def deleted_since(self, kind: str, namespace: str, name: str, mark: int) -> bool: ...


DEFAULT_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class Expectation:
    kind: str
    name: str
    created: bool
    """True: waiting to see it exist; False: waiting to see it gone or deleting."""
    deadline: float
    mark: int = 0
    """The cache's change count just before the request: a create is also met by a deletion the
    cache saw after it (created and deleted again before a pass looked)."""


class Expectations:
    """Pending creates and deletes per FineTuneJob key."""

    def __init__(self, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._pending: dict[Key, list[Expectation]] = {}

    def expect_created(self, key: Key, kind: str, name: str, mark: int) -> None:
        """`mark`: the cache's `mark(kind)` taken before the create request was sent."""
        self._add(key, Expectation(kind, name, True, self.clock() + self.ttl, mark))

    def expect_deleted(self, key: Key, kind: str, name: str) -> None:
        self._add(key, Expectation(kind, name, False, self.clock() + self.ttl))

    def _add(self, key: Key, expectation: Expectation) -> None:
        pending = [
            e for e in self._pending.get(key, ()) if (e.kind, e.name) != (expectation.kind, expectation.name)
        ]
        self._pending[key] = [*pending, expectation]

    def forget(self, key: Key) -> None:
        self._pending.pop(key, None)

    def echo(self, key: Key, kind: str, name: str, change: str) -> bool:
        """True when a watch event is the arrival of our own create ("added") or delete ("deleted")
        of `kind`/`name`: the expectation is met and dropped. The pass that made the request already
        decided as if it were done, so the controller queues no pass for it (issue 16: these echoes
        were one pass per child created); a pass held waiting for it is queued all the same."""
        pending = self._pending.get(key)
        if not pending or change not in ("added", "deleted"):
            return False
        created = change == "added"
        left = [e for e in pending if (e.kind, e.name, e.created) != (kind, name, created)]
        if len(left) == len(pending):
            return False
        if left:
            self._pending[key] = left
        else:
            del self._pending[key]
        return True

    def unmet(self, key: Key, cache: Cache) -> list[Expectation]:
        """The expectations of `key` the cache does not meet yet (met and expired ones are dropped)."""
        pending = self._pending.get(key)
        if not pending:
            return []
        now = self.clock()
        left = [e for e in pending if e.deadline > now and not _met(e, key[0], cache)]
        if left:
            self._pending[key] = left
        else:
            del self._pending[key]
        return left

    def __len__(self) -> int:
        return sum(len(pending) for pending in self._pending.values())


def _met(expectation: Expectation, namespace: str, cache: Cache) -> bool:
    obj = cache.lookup(expectation.kind, namespace, expectation.name)
    if expectation.created:
        return obj is not None or cache.deleted_since(
            expectation.kind, namespace, expectation.name, expectation.mark
        )
    return obj is None or bool((obj.get("metadata") or {}).get("deletionTimestamp"))
