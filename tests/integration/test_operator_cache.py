"""The operator's watch-fed child cache on the real API server (issue 16): an expired watch (410)
relists and reports what changed meanwhile, a watch the server ends is re-established, a child
deleted behind the operator's back is recreated, and a pass that runs before the cache shows a
Job the previous pass created neither creates nor announces it again (expectations)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest

from finetune_operator import informer as informer_module
from finetune_operator import naming
from finetune_operator.informer import Informer, Scope
from finetune_operator.job.cache import MANAGED_SELECTOR
from finetune_operator.job.controller import EXPECTATION_RECHECK_SECONDS, Controller
from finetune_operator.kube import Kube
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.rest import RestClient
from finetune_operator.settings import parse_settings
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster


async def eventually(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll `check` on the event loop until it is truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def kube_for(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Kube:
    """The operator's own client, logged in as the operator does outside a pod (the kubeconfig)."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return Kube(RestClient(kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())))


def labelled_config_map(name: str, owner: str) -> dict[str, Any]:
    labels = naming.child_labels(owner, f"uid-{owner}")
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_a_watch_resumed_from_an_expired_point_reports_what_changed_meanwhile(
    cluster, namespace, core_v1, monkeypatch
):
    """Resuming from resourceVersion 1: a long-running API server answers 410 Gone (the informer
    relists), a young one replays its watch cache from its first snapshot. Either way the cache
    must end equal to the server, with the owners of what changed queued. (The ERROR-410 event
    itself is unit-tested: a young cluster cannot be made to send it on demand.)"""
    core_v1.create_namespaced_config_map(namespace, labelled_config_map("keep", "a"))
    core_v1.create_namespaced_config_map(namespace, labelled_config_map("gone", "b"))
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "not-ours"}})

    async def scenario() -> None:
        kube = await kube_for(cluster, monkeypatch)
        changed: list[tuple[str, str]] = []
        scope = Scope(namespace, kube.api, kube.list_path("configmaps", namespace))
        cache = Informer("configmaps", [scope], MANAGED_SELECTOR, lambda key, *_: changed.append(key))
        try:
            cache.start()
            await asyncio.wait_for(cache.synced.wait(), 30)
            assert {obj["metadata"]["name"] for obj in cache} == {"keep", "gone"}  # selector: server side
            await cache.stop()
            # While nobody watches, one child is deleted behind our back and one is created; and the
            # point the watch would resume from is long compacted out of the watch cache (410 Gone).
            core_v1.delete_namespaced_config_map("gone", namespace)
            core_v1.create_namespaced_config_map(namespace, labelled_config_map("new", "c"))
            cache.resource_versions[namespace] = "1"
            changed.clear()
            cache.start()
            await eventually(
                lambda: cache.get(namespace, "new") and not cache.get(namespace, "gone"), 30, "the relist"
            )
            assert cache.relists in (1, 2)
            listed = {
                cm.metadata.name
                for cm in core_v1.list_namespaced_config_map(namespace, label_selector=MANAGED_SELECTOR).items
            }
            assert {obj["metadata"]["name"] for obj in cache} == listed == {"keep", "new"}
            assert {(namespace, "b"), (namespace, "c")} <= set(changed)
            assert (namespace, "a") not in changed  # unchanged: no pass queued for it
        finally:
            await cache.stop()
            await kube.close()

    asyncio.run(scenario())


def test_a_watch_the_server_ends_is_re_established_without_a_relist(cluster, namespace, core_v1, monkeypatch):
    monkeypatch.setattr(informer_module, "WATCH_SERVER_TIMEOUT_SECONDS", (1, 1))

    async def scenario() -> None:
        kube = await kube_for(cluster, monkeypatch)
        seen: list[tuple[str, str]] = []
        cache = Informer(
            "configmaps",
            [Scope(namespace, kube.api, kube.list_path("configmaps", namespace))],
            MANAGED_SELECTOR,
            lambda key, *_: seen.append(key),
        )
        try:
            cache.start()
            await asyncio.wait_for(cache.synced.wait(), 30)
            await eventually(lambda: cache.watches >= 3, 30, "the server to end two watches")
            core_v1.create_namespaced_config_map(namespace, labelled_config_map("late", "d"))
            await eventually(lambda: cache.get(namespace, "late"), 30, "the event on a re-established watch")
            assert cache.relists == 1
            assert seen == [(namespace, "d")]
        finally:
            await cache.stop()
            await kube.close()

    asyncio.run(scenario())


def test_a_service_deleted_behind_the_operators_back_is_recreated(operator, finetunejobs, core_v1):
    finetunejobs.create(finetunejobs.manifest("svc", workers=2, gpus=0))  # a gang: 1 worker has none
    namespace = finetunejobs.namespace
    first = wait_until(
        lambda: next(iter(core_v1.list_namespaced_service(namespace).items), None), 60, "the Service"
    )
    core_v1.delete_namespaced_service("svc", namespace)

    def recreated() -> Any:
        services = core_v1.list_namespaced_service(namespace).items
        return next((s for s in services if s.metadata.uid != first.metadata.uid), None)

    assert wait_until(recreated, 60, "the Service to be recreated").metadata.name == "svc"


def test_a_pass_before_the_cache_shows_the_new_job_creates_and_announces_nothing(
    cluster, namespace, crds_installed, finetunejobs, batch_v1, monkeypatch
):
    finetunejobs.create(finetunejobs.manifest("race", workers=1, gpus=0))
    key = (namespace, "race")

    def attempt_jobs() -> list[str]:
        return sorted(job.metadata.name for job in batch_v1.list_namespaced_job(namespace).items)

    def announcements() -> int:
        return sum(1 for event in finetunejobs.events("race") if event.reason == "AttemptCreated")

    async def scenario() -> None:
        kube = await kube_for(cluster, monkeypatch)
        env = {"FINETUNE_ALLOWED_IMAGES": "finetune-trainer"}  # as the operator fixture runs it
        settings = parse_settings(["--namespace", namespace, "--standalone", "--metrics-port", "0"], env)
        controller = Controller(settings, kube, OperatorMetrics())
        jobs_cache = controller.children.informers["jobs"]
        try:
            controller.children.start()
            await asyncio.wait_for(controller.children.wait_synced(), 30)
            await jobs_cache.stop()  # the Job watch lags: it will not show the Job the first pass creates

            await controller.reconcile(key)
            assert attempt_jobs() == ["race-a1"]
            announced = announcements()
            assert announced >= 1
            assert await controller.reconcile(key) == EXPECTATION_RECHECK_SECONDS  # held: nothing done

            jobs_cache.start()
            await eventually(lambda: jobs_cache.get(namespace, "race-a1"), 30, "the cache to show race-a1")
            await controller.reconcile(key)
            assert attempt_jobs() == ["race-a1"]
            assert (finetunejobs.get("race") or {})["status"]["attempt"] == 1
            assert announcements() == announced  # the later passes announced nothing again
        finally:
            await controller.children.stop()
            await kube.close()

    asyncio.run(scenario())
