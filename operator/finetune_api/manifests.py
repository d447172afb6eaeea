"""The FineTuneJob CustomResourceDefinition, assembled from the models.

Everything a user sees through kubectl besides the schema lives here: names, short name, category,
printer columns, the status subresource, and the immutability rules on spec.
"""

from typing import Any

from .constants import CATEGORIES, CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from .crd import structural_schema
from .immutability import immutability_rules
from .spec import FineTuneJobSpec
from .status import FineTuneJobStatus

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


def _model_schema(model: type) -> dict[str, Any]:
    return structural_schema(model.model_json_schema(by_alias=True, mode="validation"))  # type: ignore[attr-defined]


def finetunejob_schema() -> dict[str, Any]:
    """openAPIV3Schema of the FineTuneJob kind."""
    spec = _model_schema(FineTuneJobSpec)
    spec["x-kubernetes-validations"] = spec.get("x-kubernetes-validations", []) + immutability_rules()
    status = _model_schema(FineTuneJobStatus)
    return {
        "type": "object",
        "description": (
            "A FineTuneJob fine-tunes a pretrained model on a dataset with a gang of worker pods, commits "
            "resumable checkpoints to object storage, and restarts the gang from the last checkpoint when "
            "pods fail or are preempted."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "API version of the object: finetune.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": "Kind of the object: FineTuneJob."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def finetunejob_crd() -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "finetune-operator",
                "app.kubernetes.io/part-of": "finetune-operator",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": finetunejob_schema()},
                }
            ],
        },
    }
