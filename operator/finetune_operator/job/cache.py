"""The FineTuneJob controller's view of its children: one informer per kind, read by key (issue 16).

Jobs, pods, Services and ConfigMaps carrying `app.kubernetes.io/managed-by=finetune-operator` are
listed once and then followed by watches with that label selector on the server side, in each
watched namespace (or cluster-wide). `observe(job)` turns the cache into the `Observed` a pass
decides on, filtered by the FineTuneJob's UID (a job recreated under the same name is a new job
and must not adopt the old one's children). See informer.py for the recovery rules.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from finetune_operator import naming
from finetune_operator.informer import Informer, Key, Scope
from finetune_operator.job.plan import Observed
from finetune_operator.job.relevance import FINGERPRINTS, TRIMS
from finetune_operator.kube import Kube

KINDS = ("jobs", "pods", "services", "configmaps")
MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"


def group_by_attempt(objects: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for obj in objects:
        attempt = naming.attempt_of((obj.get("metadata") or {}).get("labels"))
        if attempt is not None:
            grouped.setdefault(attempt, []).append(obj)
    return grouped


ChildChanged = Callable[[Key, str, str, str], None]
"""(job key, kind, child name, "added" | "modified" | "deleted")."""


def _tell(on_change: ChildChanged, kind: str, key: Key, name: str, change: str) -> None:
    on_change(key, kind, name, change)


class ChildCache:
    """Informers for every kind of child, scoped to the watched namespaces."""

    def __init__(self, kube: Kube, namespaces: tuple[str, ...], on_change: ChildChanged):
        """`on_change(job key, kind, name, change)` is called for each change of a child that alters
        what a pass reads of it (job/relevance.py), and for each deletion."""
        targets: list[str | None] = list(namespaces) or [None]
        self.informers = {
            kind: Informer(
                kind,
                [Scope(namespace, kube.api, kube.list_path(kind, namespace)) for namespace in targets],
                MANAGED_SELECTOR,
                functools.partial(_tell, on_change, kind),
                relevance=FINGERPRINTS[kind],
                trim_more=TRIMS.get(kind),
            )
            for kind in KINDS
        }

    def start(self) -> None:
        for informer in self.informers.values():
            informer.start()

    async def stop(self) -> None:
        await asyncio.gather(*(informer.stop() for informer in self.informers.values()))

    @property
    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers.values())

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in self.informers.values()))

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.informers[kind].get(namespace, name)

    def mark(self, kind: str) -> int:
        return self.informers[kind].events

    def deleted_since(self, kind: str, namespace: str, name: str, mark: int) -> bool:
        return self.informers[kind].deleted_since(namespace, name, mark)

    def owned(self, kind: str, key: Key, uid: str) -> list[dict[str, Any]]:
        return self.informers[kind].owned_by(key, uid)

    def has(self, kind: str, key: Key, uid: str, name: str) -> bool:
        return any(obj["metadata"]["name"] == name for obj in self.owned(kind, key, uid))

    def observe(self, key: Key, uid: str) -> Observed:
        """What exists for the FineTuneJob `key` with UID `uid`, from memory."""
        jobs = group_by_attempt(self.owned("jobs", key, uid))
        return Observed(
            service_exists=self.has("services", key, uid, naming.service_name(key[1])),
            jobs={attempt: objs[0] for attempt, objs in jobs.items()},
            pods=group_by_attempt(self.owned("pods", key, uid)),
        )

    def sizes(self) -> dict[str, int]:
        return {kind: len(informer) for kind, informer in self.informers.items()}
