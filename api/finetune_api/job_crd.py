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


JOB_NAME_MAX_LENGTH = 49
"""The workers' hostnames are <name>-a<attempt>-<index> and must stay 63-character DNS labels: 49
leaves room for 10 million attempts of 1024 workers. (A schedule's runs, <schedule>-<unix minutes>,
fit: schedule names are capped at 40.)"""
DNS_LABEL_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"

NAME_RULES: list[dict[str, str]] = [
    {
        "rule": f"self.metadata.name.size() <= {JOB_NAME_MAX_LENGTH}",
        "message": (
            f"metadata.name must be at most {JOB_NAME_MAX_LENGTH} characters: the workers' hostnames "
            "<name>-a<attempt>-<index> must stay valid 63-character DNS labels; choose a shorter name"
        ),
    },
    {
        "rule": f"self.metadata.name.matches('{DNS_LABEL_PATTERN}')",
        "message": (
            "metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a letter "
            "and ending with a letter or digit; no '.'): it also names the job's headless Service"
        ),
    },
]
"""CEL on the object itself (it may look at metadata.name), so that no name the API accepts can
give a child the API refuses."""


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
        validations=NAME_RULES,
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
