"""The child cache's store and the expectations, as pure bookkeeping (the real list/watch against the
API server, 410 and relists included, is tests/integration/test_operator_cache.py)."""

from __future__ import annotations

from typing import Any

import pytest

from finetune_operator import naming
from finetune_operator.expectations import Expectations
from finetune_operator.informer import Informer, Scope, WatchExpired, owner_key, trim

KEY = ("team-a", "reviews")
UID = "uid-1"


def pod(name: str, version: str, attempt: int = 1, uid: str = UID, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": KEY[0],
            "resourceVersion": version,
            "labels": naming.child_labels(KEY[1], uid, attempt),
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"nodeName": "gpu-0", "containers": [{"name": "trainer", "env": [{"name": "BIG"}]}]},
        "status": {"phase": "Pending", **status},
    }


class Recorder:
    def __init__(self) -> None:
        self.keys: list[tuple[str, str]] = []

    def __call__(self, key: tuple[str, str], name: str = "", change: str = "") -> None:
        self.keys.append(key)


def informer(on_change: Recorder) -> Informer:
    no_io: Any = None  # these tests never list or watch
    return Informer(
        "pods",
        [Scope(KEY[0], no_io, "/api/v1/namespaces/team-a/pods")],
        "app.kubernetes.io/managed-by=finetune-operator",
        on_change,
    )


def test_trim_keeps_what_the_rules_read_and_drops_the_rest():
    trimmed = trim(pod("p-0", "5"))
    assert "managedFields" not in trimmed["metadata"]
    assert trimmed["spec"] == {"nodeName": "gpu-0"}
    assert trimmed["status"] == {"phase": "Pending"}
    assert owner_key(trimmed) == KEY


def test_events_update_the_index_and_queue_the_owner():
    changes = Recorder()
    cache = informer(changes)
    scope = cache.scopes[0]
    cache.resource_versions[scope.namespace] = "1"
    cache._apply(scope, {"type": "ADDED", "object": pod("p-0", "2")})
    cache._apply(scope, {"type": "MODIFIED", "object": pod("p-0", "3", phase="Running")})
    assert [p["status"]["phase"] for p in cache.owned_by(KEY, UID)] == ["Running"]
    assert cache.owned_by(KEY, "another-uid") == []  # a recreated job does not adopt the old children
    cache._apply(scope, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert cache.resource_versions[scope.namespace] == "9"
    cache._apply(scope, {"type": "DELETED", "object": pod("p-0", "10")})
    assert cache.owned_by(KEY) == []
    assert changes.keys == [KEY, KEY, KEY]


def test_an_expired_watch_raises_for_a_relist():
    cache = informer(Recorder())
    with pytest.raises(WatchExpired):
        cache._apply(cache.scopes[0], {"type": "ERROR", "object": {"code": 410, "message": "too old"}})


def test_a_relist_reports_what_vanished_and_skips_what_did_not_change():
    changes = Recorder()
    cache = informer(changes)
    cache._replace(KEY[0], [trim(pod("p-0", "2")), trim(pod("p-1", "2"))])
    assert len(changes.keys) == 2
    changes.keys.clear()
    # p-1 was deleted while the watch was down; p-0 is unchanged
    cache._replace(KEY[0], [trim(pod("p-0", "2"))])
    assert [p["metadata"]["name"] for p in cache.owned_by(KEY)] == ["p-0"]
    assert changes.keys == [KEY]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Seen:
    """The expectations' view of a cache: present objects, and deletions numbered like events."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.deleted: dict[tuple[str, str, str], int] = {}
        self.events = 0

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def mark(self, kind: str) -> int:
        return self.events

    def deleted_since(self, kind: str, namespace: str, name: str, mark: int) -> bool:
        return self.deleted.get((kind, namespace, name), -1) > mark

    def add(self, kind: str, name: str, **metadata: Any) -> None:
        self.events += 1
        self.objects[(kind, KEY[0], name)] = {"metadata": metadata}

    def remove(self, kind: str, name: str) -> None:
        self.events += 1
        self.objects.pop((kind, KEY[0], name), None)
        self.deleted[(kind, KEY[0], name)] = self.events


def test_expectations_hold_until_the_cache_shows_the_child_or_the_ttl_ends():
    clock = Clock()
    expectations = Expectations(ttl=30, clock=clock)
    cache = Seen()

    expectations.expect_created(KEY, "jobs", "reviews-a1", cache.mark("jobs"))
    assert [e.name for e in expectations.unmet(KEY, cache)] == ["reviews-a1"]
    cache.add("jobs", "reviews-a1")
    assert expectations.unmet(KEY, cache) == []

    expectations.expect_deleted(KEY, "jobs", "reviews-a1")
    assert len(expectations.unmet(KEY, cache)) == 1
    cache.add("jobs", "reviews-a1", deletionTimestamp="2026-01-01T00:00:00Z")
    assert expectations.unmet(KEY, cache) == []

    expectations.expect_created(KEY, "services", "reviews", cache.mark("services"))
    clock.now += 31  # a lost event never blocks a job for good
    assert expectations.unmet(KEY, cache) == []
    assert len(expectations) == 0


def test_a_child_created_and_deleted_before_a_pass_looked_meets_its_expectation():
    expectations = Expectations(ttl=300, clock=Clock())
    cache = Seen()
    cache.remove("services", "reviews")  # an older object of that name, gone before our create
    expectations.expect_created(KEY, "services", "reviews", cache.mark("services"))
    assert len(expectations.unmet(KEY, cache)) == 1
    cache.add("services", "reviews")
    cache.remove("services", "reviews")  # deleted behind our back before any pass ran
    assert expectations.unmet(KEY, cache) == []


def test_an_annotation_or_version_only_change_queues_no_pass():
    changes = Recorder()
    cache = informer(changes)
    scope = cache.scopes[0]
    cache._apply(scope, {"type": "ADDED", "object": pod("p-0", "2")})
    annotated = pod("p-0", "3")
    annotated["metadata"]["annotations"] = {"localcluster.finetune.dev/succeed": "true"}
    cache._apply(scope, {"type": "MODIFIED", "object": annotated})
    assert changes.keys == [KEY]
    assert cache.get(*("team-a", "p-0"))["metadata"]["resourceVersion"] == "3"  # still the newest
    cache._apply(scope, {"type": "MODIFIED", "object": pod("p-0", "4", phase="Running")})
    assert changes.keys == [KEY, KEY]
