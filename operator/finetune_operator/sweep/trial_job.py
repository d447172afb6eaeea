"""The FineTuneJob of one trial: deterministic name, ownership, labels, substituted spec, own prefixes.

The name <sweep>-t<index> is the lock that makes creation idempotent: the suggestion is recorded in
the sweep's status before the job is created, so an operator that restarts in between creates the
same name with the same parameters, gets AlreadyExists, and treats that as success.
"""

from __future__ import annotations

from typing import Any

from finetune_api import SpecError, parse_spec
from finetune_api.constants import API_VERSION, KIND
from finetune_api.sweep import LABEL_SWEEP, LABEL_TRIAL_INDEX, SWEEP_KIND
from finetune_operator.sweep.space import substitute


class TrialSpecError(ValueError):
    """The template with this trial's parameters is not a valid FineTuneJob spec (message says why)."""


def trial_name(sweep_name: str, index: int) -> str:
    """<sweep>-t<index>."""
    return f"{sweep_name}-t{index}"


def _prefixed(uri: str, name: str) -> str:
    return f"{uri.rstrip('/')}/{name}"


def trial_spec(template: dict[str, Any], values: dict[str, Any], name: str) -> dict[str, Any]:
    """The trial's spec: parameters substituted, output and checkpoint under the template's, checked.

    Raises TrialSpecError naming the offending field when the result is not a valid FineTuneJob spec
    (e.g. a learning rate above the API's bound, or warmupSteps with a swept warmupRatio).
    """
    spec = substitute(template, values)
    try:
        base = parse_spec(template, path="spec.template")
        output = spec.get("output") or {}
        spec["output"] = {**output, "uri": _prefixed(output.get("uri") or base.output.uri, name)}
        checkpoint = spec.get("checkpoint") or {}
        spec["checkpoint"] = {**checkpoint, "uri": _prefixed(base.effective_checkpoint_uri, name)}
        parse_spec(spec, path="spec.template")
    except SpecError as error:
        raise TrialSpecError(f"{error} (with this trial's parameters)") from None
    return spec


def trial_manifest(sweep: dict[str, Any], index: int, spec: dict[str, Any]) -> dict[str, Any]:
    """The FineTuneJob to create for trial `index` of `sweep` (the object as stored)."""
    metadata = sweep["metadata"]
    name = trial_name(metadata["name"], index)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": {LABEL_SWEEP: metadata["name"], LABEL_TRIAL_INDEX: str(index)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SWEEP_KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
