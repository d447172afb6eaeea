"""finetune_api: the FineTuneJob API (spec and status models), shared by the operator, the trainer and
the CRD generator. One source of truth (docs/architecture.md "One typed spec"): the CRD in crds/ is
generated from these
models, and `parse_spec` refuses what the API server refuses.

Only pydantic and the standard library are imported here, so the trainer image and the operator can
both depend on it cheaply.
"""

from finetune_api.constants import (
    API_VERSION,
    CATEGORIES,
    CRD_NAME,
    CREDENTIAL_SCHEMES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    URI_SCHEMES,
    VERSION,
)
from finetune_api.errors import FieldError, SpecError
from finetune_api.job import FineTuneJob
from finetune_api.learning import Dataset, EarlyStopping, Evaluation, Freeze, Lora, Model, Split, Training
from finetune_api.runtime import Checkpoint, Output, Resources, RunPolicy, SecretRef, Storage, Toleration
from finetune_api.spec import FineTuneJobSpec, parse_spec, spec_from_document
from finetune_api.spec_rules import storage_uris
from finetune_api.status import (
    CheckpointStatus,
    Condition,
    ConditionStatus,
    ConditionType,
    FineTuneJobStatus,
    OutputStatus,
    Phase,
    Progress,
    Restarts,
    WorkerStatus,
)

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "CRD_NAME",
    "CREDENTIAL_SCHEMES",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "URI_SCHEMES",
    "VERSION",
    "Checkpoint",
    "CheckpointStatus",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Dataset",
    "EarlyStopping",
    "Evaluation",
    "FieldError",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "Freeze",
    "Lora",
    "Model",
    "Output",
    "OutputStatus",
    "Phase",
    "Progress",
    "Resources",
    "Restarts",
    "RunPolicy",
    "SecretRef",
    "SpecError",
    "Split",
    "Storage",
    "Toleration",
    "Training",
    "WorkerStatus",
    "parse_spec",
    "spec_from_document",
    "storage_uris",
]
