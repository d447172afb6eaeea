"""Carrying out a pass's actions: creates and deletes of children, each recorded as an expectation.

Why apart from the controller: acting is the one place that changes children, and its rules are its
own: every create is idempotent (fixed names; "already exists" is success), a permanent 4xx becomes
`ChildRejected` (the job then fails with the API server's words instead of retrying forever), the
spec ConfigMap of another owner is never adopted, and every create/delete is recorded in the
expectations before the pass ends, so a later pass never acts twice on a lagging cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from finetune_operator.crashpoints import crash_point
from finetune_operator.expectations import Expectations
from finetune_operator.job.cache import ChildCache
from finetune_operator.job.jobview import JobView
from finetune_operator.job.plan import (
    Action,
    CreateConfigMap,
    CreateJob,
    CreateService,
    Decision,
    DeleteConfigMap,
    DeleteFineTuneJob,
    DeleteJob,
)
from finetune_operator.job.policy import permanent_rejection
from finetune_operator.kube import Kube
from finetune_operator.rest import ApiError

logger = logging.getLogger("finetune_operator")

CREATES = (CreateConfigMap, CreateService, CreateJob)
"""Actions that create a child: independent of each other, sent concurrently."""


def api_message(error: ApiError) -> str:
    """The API server's own words from an error answer (its Status message), else the HTTP reason."""
    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


class ChildRejected(Exception):
    """Creating a child failed in a way no retry can fix; the message says why."""


class Actor:
    """Acts for the controller; shares its cache and expectations."""

    def __init__(self, kube: Kube, children: ChildCache, expectations: Expectations):
        self.kube = kube
        self.children = children
        self.expectations = expectations

    async def act(self, job: JobView, decision: Decision) -> None:
        """Carry out the decision's actions; each create/delete is recorded as an expectation.

        The creates (spec ConfigMap, Service, attempt Job) go out together: they are independent
        (fixed names, each idempotent; a Job whose ConfigMap is a moment late only waits in the
        kubelet's volume mount), and sending them one after another made a new job wait for three
        round trips to a loaded API server before its Job existed (issue 16, apply -> Running).
        Every create finishes, and is recorded, before a failure is raised. Deletes follow, in order.
        """
        creates = [action for action in decision.actions if isinstance(action, CREATES)]
        results = await asyncio.gather(
            *(self._act_one(job, action) for action in creates), return_exceptions=True
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise next((f for f in failures if isinstance(f, ChildRejected)), failures[0])
        for action in decision.actions:
            if not isinstance(action, CREATES):
                await self._act_one(job, action)

    async def _act_one(self, job: JobView, action: Action) -> None:
        key = (job.namespace, job.name)
        extra = {"namespace": job.namespace, "job": job.name, "action": type(action).__name__}
        if isinstance(action, CreateService):
            mark = self.children.mark("services")
            if await self._create_child(self.kube.create_service, action.manifest):
                name = action.manifest["metadata"]["name"]
                self.expectations.expect_created(key, "services", name, mark)
            crash_point("after-create-service")
        elif isinstance(action, CreateConfigMap):
            await self._create_spec_config_map(job, action.manifest)
            crash_point("after-create-configmap")
        elif isinstance(action, CreateJob):
            mark = self.children.mark("jobs")
            created = await self._create_child(self.kube.create_job, action.manifest)
            if created:
                self.expectations.expect_created(key, "jobs", action.manifest["metadata"]["name"], mark)
            crash_point("after-create-job")
            logger.info("attempt %d Job %s", action.attempt, "created" if created else "exists", extra=extra)
        elif isinstance(action, DeleteConfigMap):
            if self.children.lookup("configmaps", job.namespace, action.name) is not None:
                await self.kube.delete_config_map(job.namespace, action.name)
                self.expectations.expect_deleted(key, "configmaps", action.name)
        elif isinstance(action, DeleteJob):
            await self.kube.delete_job(job.namespace, action.name)
            self.expectations.expect_deleted(key, "jobs", action.name)
            logger.info("deleting Job %s: %s", action.name, action.why, extra=extra)
        elif isinstance(action, DeleteFineTuneJob):
            await self.kube.delete_finetunejob(job.namespace, job.name, job.uid)
            logger.info("deleting the FineTuneJob: %s", action.why, extra=extra)

    async def _create_child(self, create: Callable[..., Any], manifest: dict[str, Any]) -> bool:
        """Create one child; a permanent 4xx becomes ChildRejected with the API's message."""
        try:
            return bool(await create(manifest))
        except ApiError as error:
            message = api_message(error)
            if not permanent_rejection(error.status, message):
                raise
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            raise ChildRejected(f"the API server refused to create {kind} {name}: {message}") from None

    async def _create_spec_config_map(self, job: JobView, manifest: dict[str, Any]) -> None:
        """The spec file; an existing ConfigMap of that name must be this job's own."""
        key, name = (job.namespace, job.name), manifest["metadata"]["name"]
        if self.children.has("configmaps", key, job.uid, name):
            return  # ours, from an earlier attempt: nothing to send
        mark = self.children.mark("configmaps")
        if await self._create_child(self.kube.create_config_map, manifest):
            self.expectations.expect_created(key, "configmaps", name, mark)
            return
        owners = await self.kube.config_map_owner_uids(job.namespace, name)
        if owners is not None and job.uid not in owners:
            raise ChildRejected(
                f"ConfigMap {name} already exists and does not belong to this FineTuneJob; the operator "
                "keeps the trainer's spec there: delete or rename that ConfigMap, or rename the job"
            )
