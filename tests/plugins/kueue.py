"""Fixtures: the real Kueue controller on the test cluster, with a queue of its own per test.

Why fixtures start Kueue themselves: `make test` on a fresh machine must run the Kueue tests with no
manual step, and the default `up` does not start Kueue (see localcluster.kueue). The binary comes
from the cache (built with the other binaries by `python -m localcluster build`, or here when
missing). Kueue's webhooks apply only to namespaces labelled for it, so it can run on the shared
cluster while other tests create Jobs; once started it stays up until `down`.

- ``kueue``: Kueue running and ready (session); the seconds it took.
- ``kueue_queue``: ``kueue_queue(flavor, quota)`` labels the test's namespace for Kueue, creates a
  ClusterQueue serving only that namespace with ``quota`` (e.g. ``{"nvidia.com/gpu": 16}``) and its
  LocalQueue, waits until Kueue reports both active, and returns the LocalQueue's name (for the
  ``kueue.x-k8s.io/queue-name`` label). The ClusterQueue is deleted afterwards.
- ``priority_classes``: ``priority_classes(low=100, high=1000)`` creates PriorityClasses with
  unique names (``preemptionPolicy: Never``, so the kube-scheduler never preempts other tests'
  pods for them; Kueue reads only their values) and returns name by key; deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from localcluster import kueue as localkueue
from localcluster.waiting import wait_until

KUEUE_API = ("kueue.x-k8s.io", "v1beta2")


@pytest.fixture(scope="session")
def kueue(cluster: Any) -> float:
    return localkueue.ensure_kueue(cluster.config, cluster.env())


def _active(custom: client.CustomObjectsApi, namespace: str | None, plural: str, name: str) -> bool:
    try:
        if namespace is None:
            body = custom.get_cluster_custom_object(*KUEUE_API, plural, name)
        else:
            body = custom.get_namespaced_custom_object(*KUEUE_API, namespace, plural, name)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Active" and c.get("status") == "True" for c in conditions)


@pytest.fixture
def kueue_queue(
    kueue: float, cluster: Any, api_client: client.ApiClient, namespace: str
) -> Iterator[Callable[[str, dict[str, str | int]], str]]:
    custom = client.CustomObjectsApi(api_client)
    env = cluster.env()
    made: list[str] = []

    def make(flavor: str, quota: dict[str, str | int]) -> str:
        localkueue.enable_namespace(cluster.config, env, namespace)
        objects = localkueue.namespace_queues(namespace, flavor, quota)
        localkueue.apply_objects(cluster.config, env, objects)
        cluster_queue, local_queue = (o["metadata"]["name"] for o in objects)
        made.append(cluster_queue)
        wait_until(
            lambda: (
                _active(custom, None, "clusterqueues", cluster_queue)
                and _active(custom, namespace, "localqueues", local_queue)
            ),
            60,
            f"Kueue to report ClusterQueue {cluster_queue} and LocalQueue {namespace}/{local_queue} active",
        )
        return local_queue

    yield make
    for name in made:
        try:
            custom.delete_cluster_custom_object(*KUEUE_API, "clusterqueues", name)
        except client.ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture
def priority_classes(api_client: client.ApiClient) -> Iterator[Callable[..., dict[str, str]]]:
    scheduling = client.SchedulingV1Api(api_client)
    made: list[str] = []

    def make(**values: int) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:6]
        names = {}
        for key, value in values.items():
            name = f"ft-test-{key}-{suffix}"
            scheduling.create_priority_class(
                {
                    "metadata": {"name": name},
                    "value": value,
                    "preemptionPolicy": "Never",
                    "description": "finetune-operator test: a Kueue workload priority",
                }
            )
            made.append(name)
            names[key] = name
        return names

    yield make
    for name in made:
        try:
            scheduling.delete_priority_class(name)
        except client.ApiException as error:
            if error.status != 404:
                raise
