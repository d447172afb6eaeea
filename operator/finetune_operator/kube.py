"""All Kubernetes API I/O of the operator, async (kubernetes_asyncio), so the event loop never blocks.

Thin on purpose: each method is one API call, returns plain camelCase dicts, and turns the expected
"already exists" / "not found" answers into return values, because the reconcile logic is built on
them being normal (deterministic names make retries idempotent).

Every call carries a timeout (issue 13 item 11): kubernetes_asyncio's default is none at all, so one
half-open connection would freeze a reconcile worker, and that job would never be reconciled again.
A timed-out call raises like any other error, and the work queue retries the pass with backoff.
Reads of children are not here: they come from the watch-fed cache (informer.py, job/cache.py),
which gets its list calls from `list_call`.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_operator import naming

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0
"""Upper bound of one API call (connect + response); generous for a loaded API server."""
TIMEOUT = {"_request_timeout": REQUEST_TIMEOUT_SECONDS}
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")
"""Tried in this order: v1beta2 is Kueue's storage version since v0.15; v1beta1 for older Kueues."""
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
"""Kueue labels the Workload it makes for a Job with the Job's uid."""


async def raw(call: Any, *args: Any, **kwargs: Any) -> bytes:
    """One API call whose answer we do not need as a client model: its body as bytes.

    kubernetes_asyncio turns every answer into generated model objects, which costs more CPU than
    the request itself at a thousand jobs (a created Job comes back whole, pod template included).
    With `_preload_content=False` the client neither parses nor checks the status: done here, with
    the same ApiException (status, reason, body) the parsed path raises.
    """
    response = await call(*args, **kwargs, _preload_content=False, **TIMEOUT)
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status >= 400:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body.decode(errors="replace")
        raise error
    return body


class Conflict(Exception):
    """The object changed since it was read (HTTP 409 on a resourceVersion-guarded write)."""


RequestCounter = Callable[[str, str], None]
"""Called with (verb, resource) for every request sent, e.g. ("POST", "jobs"),
("PATCH", "finetunejobs/status")."""


def request_resource(url: str) -> str:
    """The resource (and subresource) a request URL addresses: `.../namespaces/ns/pods/p/status` ->
    "pods/status"; cluster-scoped and all-namespace paths alike."""
    parts = urllib.parse.urlsplit(url).path.strip("/").split("/")
    # /api/v1/... or /apis/<group>/<version>/...
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    if not rest:
        return "?"
    return f"{rest[0]}/{rest[2]}" if len(rest) > 2 else rest[0]


class BoundedApiClient(client.ApiClient):
    """An ApiClient on which every request has a timeout unless the caller passes its own (a watch).

    Covers the calls made outside this module too (the schedule and sweep controllers' own API
    helpers), so no call of the operator can wait forever on a half-open connection. Every request
    is also reported to `on_request` (the operator's request counter by verb and resource), which
    is how the requests a job costs over its life are found (issue 16).
    """

    on_request: RequestCounter | None = None

    def request(self, method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        if self.on_request is not None:
            watching = any(key == "watch" and value for key, value in kwargs.get("query_params") or ())
            self.on_request("WATCH" if watching else method, request_resource(url))
        timeout = _request_timeout or REQUEST_TIMEOUT_SECONDS
        return super().request(method, url, *args, _request_timeout=timeout, **kwargs)


async def load_client_config() -> client.ApiClient:
    """In-cluster credentials when running in a pod, the current kubeconfig otherwise."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        await config.load_kube_config()
    return BoundedApiClient()


async def get_custom_object(
    custom: client.CustomObjectsApi, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """One of our kinds (`plural` of finetune.dev/v1alpha1) by name; None when it does not exist."""
    try:
        return await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, **TIMEOUT)
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
            GROUP, VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH, **TIMEOUT
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
                **TIMEOUT,
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    # --- children ----------------------------------------------------------------------------------
    def list_call(self, kind: str, namespace: str | None) -> Any:
        """The list method of one kind of child (jobs, pods, services, configmaps) for one namespace,
        or for all namespaces when `namespace` is None; informers list and watch through it."""
        api = self.batch if kind == "jobs" else self.core
        singular = {"jobs": "job", "pods": "pod", "services": "service", "configmaps": "config_map"}[kind]
        if namespace is None:
            return getattr(api, f"list_{singular}_for_all_namespaces")
        return functools.partial(getattr(api, f"list_namespaced_{singular}"), namespace)

    async def create_service(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create(self.core.create_namespaced_service, manifest)

    async def create_job(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create(self.batch.create_namespaced_job, manifest)

    async def create_config_map(self, manifest: dict[str, Any]) -> bool:
        """True when created, False when it already existed."""
        return await self._create(self.core.create_namespaced_config_map, manifest)

    async def config_map_owner_uids(self, namespace: str, name: str) -> list[str] | None:
        """The UIDs of a ConfigMap's owners; None when it does not exist."""
        try:
            found = await self.core.read_namespaced_config_map(name, namespace, **TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return [owner.uid for owner in found.metadata.owner_references or []]

    async def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            await raw(self.core.delete_namespaced_config_map, name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    async def _create(self, method: Any, manifest: dict[str, Any]) -> bool:
        try:
            await raw(method, manifest["metadata"]["namespace"], manifest)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        """Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so its
        absence proves the attempt's pods have finished their grace period."""
        try:
            await raw(
                self.batch.delete_namespaced_job,
                name,
                namespace,
                body=client.V1DeleteOptions(propagation_policy="Foreground"),
            )
        except ApiException as error:
            if error.status != 404:
                raise

    # --- Kueue ----------------------------------------------------------------------------------
    async def kueue_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]] | None:
        """The Kueue Workloads made for the Job with `job_uid` (Kueue labels them with it); None when
        Kueue's API is not installed or we may not list it (reading Kueue is best-effort)."""
        for version in KUEUE_WORKLOAD_VERSIONS:
            try:
                found = await self.custom.list_namespaced_custom_object(
                    KUEUE_GROUP,
                    version,
                    namespace,
                    "workloads",
                    label_selector=f"{KUEUE_JOB_UID_LABEL}={job_uid}",
                    **TIMEOUT,
                )
            except ApiException as error:
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
            await raw(self.core.create_namespaced_event, metadata["namespace"], body)
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
                    await self.custom.get_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", name, **TIMEOUT
                    )
                else:
                    await self.custom.get_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, "kopfpeerings", name, **TIMEOUT
                    )
                continue
            except ApiException as error:
                if error.status not in (403, 404):
                    raise
            try:
                if namespace is None:
                    await self.custom.create_cluster_custom_object(
                        "kopf.dev",
                        "v1",
                        "clusterkopfpeerings",
                        {**body, "kind": "ClusterKopfPeering"},
                        **TIMEOUT,
                    )
                else:
                    await self.custom.create_namespaced_custom_object(
                        "kopf.dev",
                        "v1",
                        namespace,
                        "kopfpeerings",
                        {**body, "kind": "KopfPeering"},
                        **TIMEOUT,
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
