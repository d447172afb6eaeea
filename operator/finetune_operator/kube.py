"""All Kubernetes API I/O of the operator, async (kubernetes_asyncio), so the event loop never blocks.

Thin on purpose: each method is one API call, returns plain camelCase dicts, and turns the expected
"already exists" / "not found" answers into return values, because the reconcile logic is built on
them being normal (deterministic names make retries idempotent).
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_operator import naming

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


class Conflict(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion-guarded write)."""


async def load_client_config() -> client.ApiClient:
    """In-cluster credentials when running in a pod, the current kubeconfig otherwise."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config()
    return client.ApiClient()


async def get_custom_object(
    custom: client.CustomObjectsApi, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """One of our kinds (`plural` of finetune.dev/v1alpha1) by name; None when it does not exist."""
    try:
        return await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def patch_custom_status(
    custom: client.CustomObjectsApi,
    plural: str,
    namespace: str,
    name: str,
    status: dict[str, Any],
    resource_version: str | None,
) -> dict[str, Any] | None:
    """Merge-patch the status subresource of one of our kinds, guarded by resourceVersion.

    None when the object is gone; Conflict when it changed since `resource_version` was read.
    """
    body: dict[str, Any] = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    try:
        return await custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH
        )
    except ApiException as error:
        if error.status == 404:
            return None
        if error.status == 409:
            raise Conflict(f"{plural} {namespace}/{name} changed since it was read") from None
        raise


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    async def close(self) -> None:
        await self.api.close()

    def _plain(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    # --- FineTuneJobs ----------------------------------------------------------------------------
    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await get_custom_object(self.custom, PLURAL, namespace, name)

    async def patch_finetunejob_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource, guarded by resourceVersion; None when the job is gone."""
        return await patch_custom_status(self.custom, PLURAL, namespace, name, status, resource_version)

    async def delete_finetunejob(self, namespace: str, name: str, uid: str) -> None:
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=client.V1DeleteOptions(propagation_policy="Background", preconditions={"uid": uid}),
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    # --- children --------------------------------------------------------------------------------
    async def list_jobs(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        result = await self.batch.list_namespaced_job(
            namespace, label_selector=naming.owned_selector(job_uid)
        )
        return [self._plain(item) for item in result.items]

    async def list_pods(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        result = await self.core.list_namespaced_pod(namespace, label_selector=naming.owned_selector(job_uid))
        return [self._plain(item) for item in result.items]

    async def service_exists(self, namespace: str, name: str) -> bool:
        try:
            await self.core.read_namespaced_service(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    async def create_service(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create(self.core.create_namespaced_service, manifest)

    async def create_job(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create(self.batch.create_namespaced_job, manifest)

    async def _create(self, method: Any, manifest: dict[str, Any]) -> bool:
        try:
            await method(manifest["metadata"]["namespace"], manifest)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        """Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so its
        absence proves the attempt's pods have finished their grace period."""
        try:
            await self.batch.delete_namespaced_job(
                name, namespace, body=client.V1DeleteOptions(propagation_policy="Foreground")
            )
        except ApiException as error:
            if error.status != 404:
                raise

    # --- events ----------------------------------------------------------------------------------
    async def post_event(
        self, job: dict[str, Any], event_type: str, reason: str, message: str, now: datetime.datetime
    ) -> None:
        """A core/v1 Event on the FineTuneJob, shown by `kubectl describe ftj` and `kubectl get events`."""
        metadata = job["metadata"]
        timestamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
            "involvedObject": {
                "apiVersion": job.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": job.get("kind", "FineTuneJob"),
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason[:128],
            "message": message[:1024],
            "source": {"component": naming.MANAGED_BY},
            "reportingComponent": naming.MANAGED_BY,
            "reportingInstance": os.environ.get("POD_NAME", naming.MANAGED_BY),
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        try:
            await self.core.create_namespaced_event(metadata["namespace"], body)
        except ApiException as error:  # events are best effort: never fail a pass for one
            logger.warning("could not post event %s: %s", reason, error.reason)

    # --- peering ---------------------------------------------------------------------------------
    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        """Create Kopf's peering object(s) if missing, so peering works without a manual step.

        Looks first (the Helm chart creates the object and grants only get/patch on it by name), so
        an operator with least-privilege RBAC never tries, and never warns about, a create it does
        not need.
        """
        body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
        targets: list[str | None] = list(namespaces) or [None]
        for namespace in targets:
            try:
                if namespace is None:
                    await self.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
                else:
                    await self.custom.get_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, "kopfpeerings", name
                    )
                continue
            except ApiException as error:
                if error.status not in (403, 404):
                    raise
            try:
                if namespace is None:
                    await self.custom.create_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", {**body, "kind": "ClusterKopfPeering"}
                    )
                else:
                    await self.custom.create_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, "kopfpeerings", {**body, "kind": "KopfPeering"}
                    )
            except ApiException as error:
                if error.status == 409:
                    continue
                logger.warning(
                    "could not create the Kopf peering object %r (%s); apply crds/kopf-peering.yaml and "
                    "grant the operator create on kopfpeerings/clusterkopfpeerings, or run --standalone",
                    name,
                    error.reason,
                )
