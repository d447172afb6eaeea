"""The Kubernetes API calls of the schedule controller (async), one method per call.

Like ../kube.py: plain camelCase dicts in and out, and "already exists" / "not found" turned into
return values, because deterministic child names make them normal outcomes, not errors.
"""

from typing import Any

from finetune_api.constants import PLURAL
from finetune_api.schedule import LABEL_SCHEDULE, SCHEDULE_PLURAL
from finetune_operator.kube import CUSTOM_API, get_custom_object, patch_custom_status
from finetune_operator.rest import ApiError, RestClient, api_path


class CreateRefused(Exception):
    """The API server refused to create the run (not "already exists"); the message says why."""


class ScheduleApi:
    def __init__(self, api: RestClient):
        self.api = api

    async def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await get_custom_object(self.api, SCHEDULE_PLURAL, namespace, name)

    async def patch_schedule_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> None:
        """Merge-patch the status subresource, guarded by resourceVersion (Conflict when it moved on)."""
        await patch_custom_status(self.api, SCHEDULE_PLURAL, namespace, name, status, resource_version)

    async def list_runs(self, namespace: str, schedule_name: str) -> list[dict[str, Any]]:
        """FineTuneJobs labelled with the schedule's name (ownership is checked by the caller)."""
        answer = await self.api.request(
            "GET",
            api_path(CUSTOM_API, PLURAL, namespace),
            params={"labelSelector": f"{LABEL_SCHEDULE}={schedule_name}"},
        )
        return list(answer.get("items") or [])

    async def create_run(self, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """Create a FineTuneJob: (the object, True) when created, (the existing one, False) when the
        name was taken (None if it vanished meanwhile). Raises CreateRefused on any other refusal."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            created = await self.api.request("POST", api_path(CUSTOM_API, PLURAL, namespace), body=manifest)
        except ApiError as error:
            if error.status == 409:
                return await get_custom_object(self.api, PLURAL, namespace, name), False
            if 400 <= error.status < 500:
                raise CreateRefused(
                    f"the API server refused FineTuneJob {name}: {error.body or error.reason}"
                ) from None
            raise
        return created, True
