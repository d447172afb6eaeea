"""The whole FineTuneJob object as stored by the API server (metadata kept as a plain dict)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from finetune_api.constants import API_VERSION, KIND
from finetune_api.spec import FineTuneJobSpec
from finetune_api.status import FineTuneJobStatus


class FineTuneJob(BaseModel):
    """A fine-tuning run of a pretrained model on a dataset, as a gang of worker pods."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["finetune.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["FineTuneJob"] = Field(default=KIND)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
    spec: FineTuneJobSpec = Field(description="Desired state.")
    status: FineTuneJobStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )
