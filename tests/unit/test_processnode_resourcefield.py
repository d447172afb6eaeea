"""The process node resolves downward-API resourceFieldRef like a kubelet (ceil of value / divisor)."""

from decimal import Decimal

import pytest

from localcluster.processnode.envvars import EnvConfigError, PodFacts, resolve_env
from localcluster.processnode.quantity import parse_quantity, resource_field_value

FACTS = PodFacts(
    pod_ip="127.0.1.7", host_ip="127.0.0.1", node_name="local-0", allocatable={"cpu": "16", "memory": "64Gi"}
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", 2),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("1Gi", 2**30),
        ("1e3", 1000),
        ("3k", 3000),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("resources", "resource", "divisor", "expected"),
    [
        ({"limits": {"cpu": "1"}}, "limits.cpu", None, "1"),
        ({"limits": {"cpu": "500m"}}, "limits.cpu", None, "1"),  # rounded up, never 0
        ({"limits": {"cpu": "2500m"}}, "limits.cpu", "1", "3"),
        ({"limits": {"cpu": "2"}}, "limits.cpu", "0", "2"),  # the API server's stored "unset" divisor
        ({"limits": {"cpu": "2"}}, "limits.cpu", "1m", "2000"),
        ({}, "limits.cpu", None, "16"),  # no limit: the node's allocatable CPUs
        ({"requests": {"memory": "1Gi"}}, "requests.memory", "1Mi", "1024"),
        ({}, "limits.memory", "1Gi", "64"),
    ],
)
def test_resource_field_values(resources, resource, divisor, expected):
    assert resource_field_value(resources, resource, divisor, dict(FACTS.allocatable)) == expected


def pod_with(container):
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [container]}}


def test_env_resolves_the_container_cpu_limit():
    container = {
        "name": "trainer",
        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
        "env": [
            {"name": "CPUS",
             "valueFrom": {"resourceFieldRef": {"containerName": "trainer", "resource": "limits.cpu"}}},
            {"name": "MILLIS",
             "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        ],
    }  # fmt: skip
    env = resolve_env(container, pod_with(container), FACTS, lambda kind, name: None)
    assert env == {"CPUS": "1", "MILLIS": "1000"}


def test_unsupported_resource_is_a_config_error():
    container = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}],
    }
    with pytest.raises(EnvConfigError, match=r"limits\.gpu"):
        resolve_env(container, pod_with(container), FACTS, lambda kind, name: None)
