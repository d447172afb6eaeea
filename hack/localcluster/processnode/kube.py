"""The few Kubernetes API calls the process node makes, on plain dicts.

Why plain dicts and not the client's models: pod specs and statuses are handled with their
JSON field names throughout (they are what users write and what tests read), and the generated
models would only add conversions. Every call has a timeout so a stopped API server never hangs
a worker thread forever.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

TIMEOUT = (5, 30)
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"

__all__ = ["STRATEGIC", "ApiException", "Kube"]


class Kube:
    def __init__(self, kubeconfig: str) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 32
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data)

    # --- pods ---------------------------------------------------------------------------
    def list_pods(self, node_name: str) -> dict[str, Any]:
        return self._json(
            self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={node_name}", _preload_content=False, _request_timeout=TIMEOUT
            )
        )

    def watch_pods(
        self, node_name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[dict[str, Any]]:
        response = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node_name}",
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(5, timeout_seconds + 30),
        )
        try:
            for line in iter_resp_lines(response):
                if line:
                    yield json.loads(line)
        finally:
            response.close()
            response.release_conn()

    def patch_pod_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.core.patch_namespaced_pod_status(
            name, namespace, body, _content_type=STRATEGIC, _preload_content=False, _request_timeout=TIMEOUT
        )

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        self.core.delete_namespaced_pod(
            name,
            namespace,
            body=client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
            ),
            _preload_content=False,
            _request_timeout=TIMEOUT,
        )

    # --- referenced objects -------------------------------------------------------------
    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret, ConfigMap or PersistentVolumeClaim of the namespace, or a PersistentVolume
        (cluster-scoped: namespace ignored); None when it does not exist."""
        namespaced = {
            "Secret": self.core.read_namespaced_secret,
            "ConfigMap": self.core.read_namespaced_config_map,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
        }
        try:
            if kind == "PersistentVolume":
                return self._json(
                    self.core.read_persistent_volume(name, _preload_content=False, _request_timeout=TIMEOUT)
                )
            read = namespaced[kind]
            return self._json(read(name, namespace, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    # --- service account tokens ---------------------------------------------------------
    def request_token(
        self, namespace: str, service_account: str, audience: str, seconds: int, pod_name: str, pod_uid: str
    ) -> tuple[str, float]:
        """A TokenRequest token of ``service_account`` bound to the pod (it dies with the pod), as a
        kubelet requests it for a projected ``serviceAccountToken``; returns (token, expiry as Unix time)."""
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid},
        }
        if audience:
            spec["audiences"] = [audience]
        body = self._json(
            self.core.create_namespaced_service_account_token(
                service_account,
                namespace,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        )
        expires = datetime.strptime(body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        return body["status"]["token"], expires.replace(tzinfo=UTC).timestamp()

    @property
    def server_url(self) -> str:
        """The API server URL of the kubeconfig."""
        return str(self.api.configuration.host)

    # --- node and lease -----------------------------------------------------------------
    def get_node(self, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.core.read_node(name, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_node(self, body: dict[str, Any]) -> None:
        self.core.create_node(body, _preload_content=False, _request_timeout=TIMEOUT)

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        self.core.patch_node(
            name, body, _content_type=STRATEGIC, _preload_content=False, _request_timeout=TIMEOUT
        )

    def patch_node_status(self, name: str, body: dict[str, Any]) -> None:
        self.core.patch_node_status(
            name, body, _content_type=STRATEGIC, _preload_content=False, _request_timeout=TIMEOUT
        )

    def renew_lease(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        namespace = body["metadata"]["namespace"]
        try:
            self.coordination.patch_namespaced_lease(
                name,
                namespace,
                {"spec": body["spec"]},
                _content_type=MERGE,
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self.coordination.create_namespaced_lease(
                namespace, body, _preload_content=False, _request_timeout=TIMEOUT
            )
