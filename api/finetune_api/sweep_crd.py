"""The FineTuneSweep CustomResourceDefinition, assembled from the models like FineTuneJob's.

Beyond the generated schema it adds what the models cannot express on a field of their own: the
length limit of metadata.name that keeps trial names valid, and categorical values of any JSON type
(a structural schema needs a type on every node unless it preserves unknown fields).
"""

from typing import Any

from finetune_api.crd import crd_document, model_schema, object_schema
from finetune_api.sweep import (
    SWEEP_CRD_NAME,
    SWEEP_KIND,
    SWEEP_NAME_MAX_LENGTH,
    SWEEP_PLURAL,
    SWEEP_SHORT_NAMES,
    SWEEP_SINGULAR,
    FineTuneSweepSpec,
    FineTuneSweepStatus,
)

SWEEP_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the sweep is."},
    {
        "name": "Trials",
        "type": "string",
        "jsonPath": ".status.trialsSummary",
        "description": "Succeeded/total trials, with pruned and failed counts.",
    },
    {
        "name": "Best",
        "type": "number",
        "jsonPath": ".status.bestTrial.value",
        "description": "Objective value of the best trial.",
    },
    {
        "name": "Best Trial",
        "type": "string",
        "jsonPath": ".status.bestTrial.name",
        "description": "FineTuneJob of the best trial.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

NAME_RULE = {
    "rule": f"self.metadata.name.size() <= {SWEEP_NAME_MAX_LENGTH}",
    "message": (
        f"metadata.name must be at most {SWEEP_NAME_MAX_LENGTH} characters: each trial is named "
        "<sweep>-t<index> and must stay a valid FineTuneJob name"
    ),
}


def _any_json_items(spec: dict[str, Any]) -> None:
    """parameters[].values items may be numbers, strings, booleans or lists: no type, keep all."""
    values = spec["properties"]["parameters"]["items"]["properties"]["values"]
    values["items"] = {"x-kubernetes-preserve-unknown-fields": True}


def finetunesweep_schema() -> dict[str, Any]:
    """openAPIV3Schema of the FineTuneSweep kind."""
    spec = model_schema(FineTuneSweepSpec)
    _any_json_items(spec)
    return object_schema(
        kind=SWEEP_KIND,
        description=(
            "A FineTuneSweep searches hyperparameters: it runs trials (FineTuneJobs made from spec.template "
            "with the parameters substituted), chooses each trial's parameters with Optuna and stops "
            "hopeless trials early from their live evaluation metrics."
        ),
        spec=spec,
        status=model_schema(FineTuneSweepStatus),
        validations=[NAME_RULE],
    )


def finetunesweep_crd() -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition object."""
    return crd_document(
        name=SWEEP_CRD_NAME,
        kind=SWEEP_KIND,
        plural=SWEEP_PLURAL,
        singular=SWEEP_SINGULAR,
        short_names=SWEEP_SHORT_NAMES,
        printer_columns=SWEEP_PRINTER_COLUMNS,
        schema=finetunesweep_schema(),
    )
