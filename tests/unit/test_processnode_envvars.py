"""Container environment resolution: order, references, optional values, downward API."""

import base64

import pytest

from localcluster.processnode.envvars import EnvConfigError, PodFacts, field_value, resolve_env

POD = {
    "metadata": {
        "name": "job-a1-0-xyz",
        "namespace": "team",
        "uid": "1234",
        "labels": {"app": "trainer"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
    },
    "spec": {"nodeName": "local-0", "serviceAccountName": "runner"},
}
FACTS = PodFacts(pod_ip="127.0.1.7", host_ip="127.0.0.1", node_name="local-0")
OBJECTS = {
    ("Secret", "creds"): {"data": {"AWS_ACCESS_KEY_ID": base64.b64encode(b"key").decode()}},
    ("ConfigMap", "settings"): {"data": {"mode": "fast", "level": "3"}, "binaryData": {"blob": "aGk="}},
}


def lookup(kind, name):
    return OBJECTS.get((kind, name))


def env_of(container):
    return resolve_env(container, POD, FACTS, lookup)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "job-a1-0-xyz"),
        ("metadata.namespace", "team"),
        ("metadata.uid", "1234"),
        ("metadata.labels['app']", "trainer"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['batch.kubernetes.io/job-completion-index']", "1"),
        ("spec.nodeName", "local-0"),
        ("spec.serviceAccountName", "runner"),
        ("status.podIP", "127.0.1.7"),
        ("status.hostIP", "127.0.0.1"),
    ],
)
def test_field_paths(path, expected):
    assert field_value(POD, FACTS, path) == expected


def test_unsupported_field_path_names_the_path():
    with pytest.raises(EnvConfigError, match=r"metadata\.generation"):
        field_value(POD, FACTS, "metadata.generation")


def test_values_expand_against_earlier_variables_only():
    env = env_of(
        {
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-$(C)"},
                {"name": "C", "value": "c"},
                {"name": "D", "value": "$$(A)"},
            ]
        }
    )
    assert env == {"A": "a", "B": "a-$(C)", "C": "c", "D": "$(A)"}


def test_env_from_comes_first_and_env_overrides_it():
    env = env_of(
        {
            "envFrom": [
                {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                {"secretRef": {"name": "creds"}},
            ],
            "env": [{"name": "CFG_mode", "value": "slow"}, {"name": "ECHO", "value": "$(CFG_level)"}],
        }
    )
    assert env == {
        "CFG_mode": "slow",
        "CFG_level": "3",
        "CFG_blob": "hi",
        "AWS_ACCESS_KEY_ID": "key",
        "ECHO": "3",
    }


def test_key_references():
    env = env_of(
        {
            "env": [
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "AWS_ACCESS_KEY_ID"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {
                    "name": "OPT",
                    "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}},
                },
                {
                    "name": "IDX",
                    "valueFrom": {
                        "fieldRef": {
                            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                        }
                    },
                },
            ]
        }
    )
    assert env == {"KEY": "key", "MODE": "fast", "IDX": "1"}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]},
            'secret "nope" not found',
        ),
        (
            {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]},
            "couldn't find key k",
        ),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
        (
            {"env": [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]},
            "not supported",
        ),
    ],
)
def test_missing_references_are_config_errors(container, message):
    with pytest.raises(EnvConfigError, match=message):
        env_of(container)


def test_optional_env_from_is_skipped():
    assert env_of({"envFrom": [{"configMapRef": {"name": "nope", "optional": True}}]}) == {}
