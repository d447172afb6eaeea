"""The FineTuneJob CustomResourceDefinition, assembled from the models.

Everything a user sees through kubectl besides the schema lives here: names, short name, category,
printer columns, the status subresource, and the immutability rules on spec.
"""

from typing import Any

from finetune_api.constants import CRD_NAME, KIND, PLURAL, SHORT_NAMES, SINGULAR
from finetune_api.crd import crd_document, model_schema, object_schema
from finetune_api.immutability import immutability_rules
from finetune_api.spec import FineTuneJobSpec
from finetune_api.status import FineTuneJobStatus

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the job is."},
    {
        "name": "Progress",
        "type": "number",
        "jsonPath": ".status.progress.percent",
        "description": "Training progress in percent.",
    },
    {
        "name": "Step",
        "type": "integer",
        "jsonPath": ".status.progress.step",
        "description": "Optimizer steps done.",
    },
    {
        "name": "Loss",
        "type": "number",
        "jsonPath": ".status.progress.trainLoss",
        "description": "Latest train loss.",
    },
    {
        "name": "Restarts",
        "type": "integer",
        "jsonPath": ".status.restarts.total",
        "description": "Gang restarts so far.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def finetunejob_schema() -> dict[str, Any]:
    """openAPIV3Schema of the FineTuneJob kind."""
    spec = model_schema(FineTuneJobSpec)
    spec["x-kubernetes-validations"] = spec.get("x-kubernetes-validations", []) + immutability_rules()
    return object_schema(
        kind=KIND,
        description=(
            "A FineTuneJob fine-tunes a pretrained model on a dataset with a gang of worker pods, commits "
            "resumable checkpoints to object storage, and restarts the gang from the last checkpoint when "
            "pods fail or are preempted."
        ),
        spec=spec,
        status=model_schema(FineTuneJobStatus),
    )


def finetunejob_crd() -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return crd_document(
        name=CRD_NAME,
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        printer_columns=PRINTER_COLUMNS,
        schema=finetunejob_schema(),
    )
