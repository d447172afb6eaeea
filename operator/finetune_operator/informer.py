"""A watch-fed, in-memory cache of one kind of the operator's children, indexed by owning job (issue 16).

Why: a reconcile pass used to list its job's Jobs and pods and read its Service fresh from the API
on every pass (three requests, plus their cost on the API server), and the Kopf watches streamed
every pod and Job of the cluster to filter them on the client. An informer (client-go's pattern)
lists once, then follows a watch from the list's resourceVersion, so a pass reads memory.

- **Only our children travel**: the list and the watch carry a server-side label selector.
- **Small objects**: each object is trimmed on arrival (managedFields and the pod template are
  dropped; `trim` says what is kept) so a thousand jobs' children stay a few MiB. Lines are decoded
  with orjson: decoding watch events was the operator's largest single CPU cost at scale, and
  orjson's key cache shares the dict keys of every cached object instead of one copy per object.
- **Level-triggered recovery**: a watch that ends (server timeout, a dropped connection, a silent
  half-open one caught by the read timeout) resumes from the last resourceVersion seen; a watch
  that is too old (HTTP 410 Gone, or an ERROR event with code 410) relists, and the relist reports
  every object that appeared, changed or vanished meanwhile (a child deleted behind our back).
- **Every request has a timeout** (issue 13 item 11): a hung list or watch is abandoned and retried.

The informer knows nothing about reconciling: it calls `on_change(owner_key, name, change)` for each
object whose `relevance` changed (and for every deletion), and the controller queues that key.
Until `synced` is set the cache is incomplete, and the controller must not run a pass (it would
create children that exist).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from finetune_operator import naming
from finetune_operator.rest import ApiError, Params, RestClient

logger = logging.getLogger("finetune_operator.informer")

Key = tuple[str, str]  # (namespace, FineTuneJob name)

LIST_PAGE = 500
LIST_TIMEOUT_SECONDS = 60.0
WATCH_SERVER_TIMEOUT_SECONDS = (240, 360)
"""Server-side watch timeout, drawn per watch (client-go draws 5-10 min) so watches do not end together."""
WATCH_READ_TIMEOUT_SECONDS = 90.0
"""No byte for this long (bookmarks arrive about every minute) means a dead connection: re-establish."""
RETRY_SECONDS = (0.5, 1, 2, 5, 10)


class WatchExpired(Exception):
    """The watch's resourceVersion is too old for the API server (410 Gone): relist."""


def trim_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if key != "managedFields"}


def trim(obj: dict[str, Any]) -> dict[str, Any]:
    """What the operator reads of a child: metadata, status, and from the spec only `suspend` (Jobs)
    and `nodeName` (pods). Everything else (the pod template with the spec JSON) is dropped."""
    spec = obj.get("spec") or {}
    kept = {key: spec[key] for key in ("suspend", "nodeName") if key in spec}
    trimmed: dict[str, Any] = {"metadata": trim_metadata(obj.get("metadata") or {})}
    if kept:
        trimmed["spec"] = kept
    if "status" in obj:
        trimmed["status"] = obj["status"]
    return trimmed


IGNORED_METADATA = frozenset({"resourceVersion", "annotations", "generation", "managedFields"})


def significant(obj: dict[str, Any] | None) -> Any:
    """The default relevance: status, the kept spec, labels, deletion (None: absent).

    A resourceVersion bump alone (a relist, a no-op update) or an annotation change (our pods'
    annotations are set at creation and never read after) queues nothing. The stored object is
    still replaced, so a pass always reads the newest one. Controllers pass a narrower relevance
    per kind (job/relevance.py).
    """
    if obj is None:
        return None
    metadata = obj.get("metadata") or {}
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k not in IGNORED_METADATA}}


Relevance = Callable[[dict[str, Any] | None], Any]
"""What of an object (None: absent) a change must alter to be reported; compared with ==."""
OnChange = Callable[[Key, str, str], None]
"""on_change(owner key, object name, "added" | "modified" | "deleted")."""


def owner_key(obj: dict[str, Any]) -> Key | None:
    """The FineTuneJob an object belongs to, from its finetune.dev/job-name label."""
    metadata = obj.get("metadata") or {}
    owner = (metadata.get("labels") or {}).get(naming.LABEL_JOB_NAME)
    namespace = metadata.get("namespace")
    return (namespace, owner) if owner and namespace else None


async def _open(scope: Scope, params: Params, limit: float | aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
    """The scope's list or watch response, unread; 410 Gone (too old a resourceVersion or continue
    token) is WatchExpired, which relists."""
    try:
        return await scope.api.open("GET", scope.path, params=params, request_timeout=limit)
    except ApiError as error:
        if error.status == 410:
            raise WatchExpired(error.body[:500]) from None
        raise


def _resource_version(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


@dataclass(frozen=True)
class Scope:
    """One list+watch: a namespace (or None for all namespaces), the client, and the collection's
    path (e.g. /api/v1/namespaces/ns/pods, from `Kube.list_path`)."""

    namespace: str | None
    api: RestClient
    path: str


class Informer:
    """The cache of one kind (e.g. "pods") over one or more scopes."""

    def __init__(
        self,
        kind: str,
        scopes: list[Scope],
        selector: str,
        on_change: OnChange,
        *,
        relevance: Relevance = significant,
        trim_more: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        read_timeout: float = WATCH_READ_TIMEOUT_SECONDS,
    ) -> None:
        self.kind = kind
        self.scopes = scopes
        self.selector = selector
        self.on_change = on_change
        self.relevance = relevance
        self.trim_more = trim_more
        """A kind's own trim after `trim` (the controller knows what it reads of that kind)."""
        self.read_timeout = read_timeout
        self.synced = asyncio.Event()
        self.relists = 0
        """How many lists were made (1 per scope at start, then one per expired watch): for tests and logs."""
        self.watches = 0
        """How many watches were started (each server timeout or dropped connection starts another)."""
        self.resource_versions: dict[str | None, str | None] = {}
        """The resourceVersion each scope's watch resumes from (None: relist next)."""
        self.events = 0
        """Changes applied to the store so far: a mark for "seen since" questions (expectations)."""
        self._deleted_at: dict[tuple[str, str], int] = {}
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._by_owner: dict[Key, set[tuple[str, str]]] = {}
        self._synced_scopes: set[str | None] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # --- reading ---------------------------------------------------------------------------------
    def owned_by(self, key: Key, uid: str | None = None) -> list[dict[str, Any]]:
        """Objects labelled as children of FineTuneJob `key` (and of that UID, when given)."""
        found = [self._objects[ref] for ref in self._by_owner.get(key, ()) if ref in self._objects]
        if uid is None:
            return found
        return [
            obj for obj in found if (obj["metadata"].get("labels") or {}).get(naming.LABEL_JOB_UID) == uid
        ]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get((namespace, name))

    def deleted_since(self, namespace: str, name: str, mark: int) -> bool:
        """True when the cache saw this object deleted after `mark` (a value of `events`): a child
        created and deleted again before a pass looked is still a create the cache has seen."""
        return self._deleted_at.get((namespace, name), -1) > mark

    def __len__(self) -> int:
        return len(self._objects)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._objects.values()))

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for scope in self.scopes:
            self.resource_versions.setdefault(scope.namespace, None)
            self._tasks.append(
                asyncio.create_task(self._run(scope), name=f"informer-{self.kind}-{scope.namespace or '*'}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, scope: Scope) -> None:
        failures = 0
        while True:
            try:
                if self.resource_versions.get(scope.namespace) is None:
                    self.resource_versions[scope.namespace] = await self.relist(scope)
                await self.watch(scope)
                failures = 0
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                logger.info("%s watch expired (410); relisting", self.kind)
                self.resource_versions[scope.namespace] = None
            except Exception as error:  # a dropped connection, a timeout, a 5xx: retry with backoff
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning(
                    "%s list/watch failed (%s: %s); retrying in %ss",
                    self.kind,
                    type(error).__name__,
                    str(error)[:200],
                    delay,
                )
                await asyncio.sleep(delay)

    # --- list ------------------------------------------------------------------------------------
    async def relist(self, scope: Scope) -> str:
        """List the scope (paged) and make the cache equal to it; return the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        resource_version = ""
        while True:
            params = {"labelSelector": self.selector, "limit": LIST_PAGE, "continue": token}
            response = await _open(scope, params, LIST_TIMEOUT_SECONDS)
            try:
                page = orjson.loads(await response.read())
            finally:
                response.release()
            items.extend(self._trim(item) for item in page.get("items") or ())
            metadata = page.get("metadata") or {}
            resource_version = metadata.get("resourceVersion") or resource_version
            token = metadata.get("continue")
            if not token:
                break
        self.relists += 1
        self._replace(scope.namespace, items)
        self._synced_scopes.add(scope.namespace)
        if len(self._synced_scopes) >= len(self.scopes):
            self.synced.set()
        return resource_version

    def _trim(self, obj: dict[str, Any]) -> dict[str, Any]:
        trimmed = trim(obj)
        return trimmed if self.trim_more is None else self.trim_more(trimmed)

    def _replace(self, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """The cache after a list: report what appeared, changed or vanished since the last view."""
        listed = {(obj["metadata"]["namespace"], obj["metadata"]["name"]): obj for obj in items}
        stale = [
            ref for ref in self._objects if (namespace is None or ref[0] == namespace) and ref not in listed
        ]
        for ref in stale:
            self._delete(ref)
        for obj in listed.values():
            self._upsert(obj)

    # --- watch -----------------------------------------------------------------------------------
    async def watch(self, scope: Scope) -> None:
        """Follow one watch until it ends; the resourceVersion to resume from is kept as it goes."""
        self.watches += 1
        params = {
            "labelSelector": self.selector,
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": self.resource_versions[scope.namespace],
            "timeoutSeconds": random.randint(*WATCH_SERVER_TIMEOUT_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=LIST_TIMEOUT_SECONDS, sock_read=self.read_timeout)
        response = await _open(scope, params, timeout)
        try:
            while True:
                line = await response.content.readline()
                if not line:
                    return  # the server ended the watch (its timeout): resume from where we are
                self._apply(scope, orjson.loads(line))
        finally:
            response.release()

    def _apply(self, scope: Scope, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise WatchExpired(obj.get("message"))
            raise ApiError(code or 500, obj.get("reason") or "watch error", obj.get("message") or "")
        version = _resource_version(obj)
        if version:
            self.resource_versions[scope.namespace] = version
        if kind == "BOOKMARK":
            return
        metadata = obj.get("metadata") or {}
        ref = (metadata.get("namespace"), metadata.get("name"))
        if kind == "DELETED":
            self._delete(ref)  # type: ignore[arg-type]
        elif kind in ("ADDED", "MODIFIED"):
            self._upsert(self._trim(obj))

    # --- the store -------------------------------------------------------------------------------
    def _upsert(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        ref = (metadata["namespace"], metadata["name"])
        previous = self._objects.get(ref)
        if previous is not None and _resource_version(previous) == _resource_version(obj):
            return  # a relist of an object we already have: nothing changed
        if previous is not None:
            self._unindex(ref, previous)
        self.events += 1
        self._objects[ref] = obj
        owner = owner_key(obj)
        if owner is not None:
            self._by_owner.setdefault(owner, set()).add(ref)
            if self.relevance(previous) != self.relevance(obj):
                self.on_change(owner, ref[1], "added" if previous is None else "modified")

    def _delete(self, ref: tuple[str, str]) -> None:
        previous = self._objects.pop(ref, None)
        if previous is None:
            return
        self.events += 1
        self._deleted_at[ref] = self.events
        if len(self._deleted_at) > 20000:  # keep the newest half: marks older than that have lapsed
            newest = sorted(self._deleted_at.items(), key=lambda item: item[1])[10000:]
            self._deleted_at = dict(newest)
        self._unindex(ref, previous)
        owner = owner_key(previous)
        if owner is not None:  # a deletion is always reported (a child gone behind our back)
            self.on_change(owner, ref[1], "deleted")

    def _unindex(self, ref: tuple[str, str], obj: dict[str, Any]) -> None:
        owner = owner_key(obj)
        if owner is None:
            return
        refs = self._by_owner.get(owner)
        if refs is not None:
            refs.discard(ref)
            if not refs:
                del self._by_owner[owner]
