"""Control-plane behaviour the project relies on: garbage collection and RBAC (issue 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes import client

from localcluster.waiting import wait_until
from tests.plugins.cluster import ClusterHandle

pytestmark = pytest.mark.cluster


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_garbage_collector_deletes_child_of_deleted_owner(core_v1: client.CoreV1Api, namespace: str) -> None:
    owner = core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child", "ownerReferences": [reference]}}
    )

    core_v1.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    wait_until(
        lambda: _gone(lambda: core_v1.read_namespaced_config_map("child", namespace)),
        60,
        "the garbage collector to delete ConfigMap child",
    )


def _client_with_token(cluster: ClusterHandle, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = cluster.config.apiserver_url
    configuration.ssl_ca_cert = str(cluster.config.pki_dir / "ca.crt")
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def test_service_account_without_role_binding_is_refused(
    cluster: ClusterHandle, core_v1: client.CoreV1Api, namespace: str
) -> None:
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    request = core_v1.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    )
    with _client_with_token(cluster, request.status.token) as api:
        as_nobody = client.CoreV1Api(api)
        with pytest.raises(client.ApiException) as refused:
            as_nobody.list_namespaced_pod(namespace)
        assert refused.value.status == 403  # authenticated (not 401), but not authorised
        assert f"system:serviceaccount:{namespace}:nobody" in refused.value.body

        rbac = client.RbacAuthorizationV1Api(core_v1.api_client)
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "nobody-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )
        wait_until(
            lambda: as_nobody.list_namespaced_pod(namespace) is not None, 30, "the RoleBinding to apply"
        )
