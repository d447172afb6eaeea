"""All Kubernetes API I/O of the operator, async (rest.py's client), so the event loop never blocks.

Thin on purpose: each method is one API call, returns plain camelCase dicts, and turns the expected
"already exists" / "not found" answers into return values, because the reconcile logic is built on
them being normal (deterministic names make retries idempotent).

Every call carries a timeout (issue 13 item 11; rest.py adds REQUEST_TIMEOUT_SECONDS to each), so
one half-open connection never freezes a reconcile worker: a timed-out call raises like any other
error, and the work queue retries the pass with backoff. Reads of children are not here: they come
from the watch-fed cache (informer.py, job/cache.py), which lists and watches `list_path`.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import aiohttp

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_operator import naming
from finetune_operator.rest import MERGE_PATCH, ApiError, RestClient, api_path

logger = logging.getLogger(__name__)

CUSTOM_API = f"{GROUP}/{VERSION}"
CHILD_APIS = {"jobs": "batch/v1", "pods": "v1", "services": "v1", "configmaps": "v1"}
"""The API group/version of each kind of child the operator creates or watches."""
KUEUE_API = "kueue.x-k8s.io"
KUEUE_WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")
"""Tried in this order: v1beta2 is Kueue's storage version since v0.15; v1beta1 for older Kueues."""
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
"""Kueue labels the Workload it makes for a Job with the Job's uid."""
PEERING_API = "kopf.dev/v1"


class Conflict(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion-guarded write)."""


async def load_client_config() -> RestClient:
    """A client with in-cluster credentials when running in a pod, the current kubeconfig otherwise."""
    return RestClient.connect()


async def get_custom_object(api: RestClient, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """One of our kinds (`plural` of finetune.dev/v1alpha1) by name; None when it does not exist."""
    try:
        found: dict[str, Any] = await api.request("GET", api_path(CUSTOM_API, plural, namespace, name))
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    return found


async def patch_custom_status(
    api: RestClient,
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
        patched: dict[str, Any] = await api.request(
            "PATCH",
            api_path(CUSTOM_API, plural, namespace, name, "status"),
            body=body,
            content_type=MERGE_PATCH,
        )
    except ApiError as error:
        if error.status == 404:
            return None
        if error.status == 409:
            raise Conflict(f"{plural} {namespace}/{name} changed since it was read") from None
        raise
    return patched


def delete_options(propagation: str, uid: str | None = None) -> dict[str, Any]:
    """A DeleteOptions body: how dependents go, and (with `uid`) only if it is still that object."""
    options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
    if uid is not None:
        options["preconditions"] = {"uid": uid}
    return options


class Kube:
    def __init__(self, api: RestClient):
        self.api = api

    async def close(self) -> None:
        await self.api.close()

    # --- FineTuneJobs ----------------------------------------------------------------------------
    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await get_custom_object(self.api, PLURAL, namespace, name)

    async def patch_finetunejob_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource, guarded by resourceVersion; None when the job is gone."""
        return await patch_custom_status(self.api, PLURAL, namespace, name, status, resource_version)

    async def delete_finetunejob(self, namespace: str, name: str, uid: str) -> None:
        try:
            await self.api.request(
                "DELETE",
                api_path(CUSTOM_API, PLURAL, namespace, name),
                body=delete_options("Background", uid),
                parse=False,
            )
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    # --- children ----------------------------------------------------------------------------------
    def list_path(self, kind: str, namespace: str | None) -> str:
        """Where one kind of child (jobs, pods, services, configmaps) is listed and watched, in one
        namespace or in all namespaces when `namespace` is None; informers list and watch it."""
        return api_path(CHILD_APIS[kind], kind, namespace)

    async def create_service(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create("services", manifest)

    async def create_job(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create("jobs", manifest)

    async def create_config_map(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create("configmaps", manifest)

    async def config_map_owner_uids(self, namespace: str, name: str) -> list[str] | None:
        """The UIDs of a ConfigMap's owners; None when it does not exist."""
        try:
            found = await self.api.request("GET", api_path("v1", "configmaps", namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return [owner["uid"] for owner in (found.get("metadata") or {}).get("ownerReferences") or []]

    async def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            await self.api.request("DELETE", api_path("v1", "configmaps", namespace, name), parse=False)
        except ApiError as error:
            if error.status != 404:
                raise

    async def _create(self, kind: str, manifest: dict[str, Any]) -> bool:
        """POST one child; the answer (the whole object, pod template included) is not parsed:
        nothing reads it, and at a thousand jobs parsing it would be most of the call's CPU."""
        path = api_path(CHILD_APIS[kind], kind, manifest["metadata"]["namespace"])
        try:
            await self.api.request("POST", path, body=manifest, parse=False)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        """Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so its
        absence proves the attempt's pods have finished their grace period."""
        try:
            await self.api.request(
                "DELETE",
                api_path("batch/v1", "jobs", namespace, name),
                body=delete_options("Foreground"),
                parse=False,
            )
        except ApiError as error:
            if error.status != 404:
                raise

    # --- Kueue ----------------------------------------------------------------------------------
    async def kueue_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]] | None:
        """The Kueue Workloads made for the Job with `job_uid` (Kueue labels them with it); None when
        Kueue's API is not installed or we may not list it (reading Kueue is best-effort)."""
        for version in KUEUE_WORKLOAD_VERSIONS:
            try:
                found = await self.api.request(
                    "GET",
                    api_path(f"{KUEUE_API}/{version}", "workloads", namespace),
                    params={"labelSelector": f"{KUEUE_JOB_UID_LABEL}={job_uid}"},
                )
            except ApiError as error:
                if error.status == 404:  # this version is not served (or no Kueue at all)
                    continue
                if error.status == 403:
                    logger.debug("may not list Kueue workloads in %s: %s", namespace, error.reason)
                    return None
                raise
            return list(found.get("items") or [])
        return None

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
            await self.api.request(
                "POST", api_path("v1", "events", metadata["namespace"]), body=body, parse=False
            )
        except ApiError as error:  # events are best effort: never fail a pass for one
            logger.warning("could not post event %s: %s", reason, error.reason)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:  # nor for a slow or lost connection
            logger.warning("could not post event %s: %s", reason, f"{type(error).__name__}: {error}")

    # --- peering ---------------------------------------------------------------------------------
    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        """Create Kopf's peering object(s) if missing, so peering works without a manual step.

        Looks first (the Helm chart creates the object and grants only get/patch on it by name), so
        an operator with least-privilege RBAC never tries, and never warns about, a create it does
        not need.
        """
        targets: list[str | None] = list(namespaces) or [None]
        for namespace in targets:
            plural, kind = (
                ("clusterkopfpeerings", "ClusterKopfPeering")
                if namespace is None
                else ("kopfpeerings", "KopfPeering")
            )
            try:
                await self.api.request("GET", api_path(PEERING_API, plural, namespace, name), parse=False)
                continue
            except ApiError as error:
                if error.status not in (403, 404):
                    raise
            body = {"apiVersion": PEERING_API, "kind": kind, "metadata": {"name": name}}
            try:
                await self.api.request(
                    "POST", api_path(PEERING_API, plural, namespace), body=body, parse=False
                )
            except ApiError as error:
                if error.status == 409:
                    continue
                logger.warning(
                    "could not create the Kopf peering object %r (%s); apply crds/kopf-peering.yaml and "
                    "grant the operator create on kopfpeerings/clusterkopfpeerings, or run --standalone",
                    name,
                    error.reason,
                )
