"""The Kubernetes API calls of the sweep controller (async), one method per call.

Like ../kube.py: plain camelCase dicts in and out, "already exists" and "not found" turned into
return values, because deterministic trial names make them normal outcomes, not errors.
"""

from __future__ import annotations

from typing import Any

from finetune_api.constants import PLURAL
from finetune_api.sweep import LABEL_SWEEP, SWEEP_PLURAL
from finetune_operator.kube import CUSTOM_API, get_custom_object, patch_custom_status
from finetune_operator.rest import MERGE_PATCH, ApiError, RestClient, api_path


class CreateRefused(Exception):
    """The API server refused the trial's FineTuneJob (not "already exists"); the message says why."""


class SweepApi:
    def __init__(self, api: RestClient):
        self.api = api

    async def get_sweep(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await get_custom_object(self.api, SWEEP_PLURAL, namespace, name)

    async def patch_sweep_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> None:
        """Merge-patch the status subresource, guarded by resourceVersion (Conflict when it moved on)."""
        await patch_custom_status(self.api, SWEEP_PLURAL, namespace, name, status, resource_version)

    async def list_trials(self, namespace: str, sweep_name: str) -> list[dict[str, Any]]:
        """FineTuneJobs labelled with the sweep's name (ownership is checked by the caller)."""
        answer = await self.api.request(
            "GET",
            api_path(CUSTOM_API, PLURAL, namespace),
            params={"labelSelector": f"{LABEL_SWEEP}={sweep_name}"},
        )
        return list(answer.get("items") or [])

    async def create_trial(self, manifest: dict[str, Any]) -> bool:
        """Create a trial FineTuneJob: True when created, False when the name was already taken."""
        namespace = manifest["metadata"]["namespace"]
        try:
            await self.api.request(
                "POST", api_path(CUSTOM_API, PLURAL, namespace), body=manifest, parse=False
            )
        except ApiError as error:
            if error.status == 409:
                return False
            if 400 <= error.status < 500:
                name = manifest["metadata"]["name"]
                raise CreateRefused(
                    f"the API server refused FineTuneJob {name}: {error.body or error.reason}"
                ) from None
            raise
        return True

    async def set_trial_suspended(self, namespace: str, name: str, suspend: bool) -> None:
        """Suspend or resume a trial (runPolicy.suspend, which the FineTuneJob API lets change)."""
        body = {"spec": {"runPolicy": {"suspend": suspend}}}
        try:
            await self.api.request(
                "PATCH",
                api_path(CUSTOM_API, PLURAL, namespace, name),
                body=body,
                content_type=MERGE_PATCH,
                parse=False,
            )
        except ApiError as error:
            if error.status != 404:
                raise
