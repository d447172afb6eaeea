"""A FineTuneJob as the operator's pure logic sees it: metadata, the parsed and defaulted spec, status.

The spec is validated with the API models (DESIGN.md D1) and then kept as the camelCase dict that
`FineTuneJobSpec.model_dump(by_alias=True, mode="json")` gives: that dict is exactly what the trainer
receives in FINETUNE_JOB_SPEC, and reading wire names keeps the operator independent of the models'
Python attribute names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from finetune_api import SpecError, parse_spec


class InvalidSpecError(ValueError):
    """The spec does not validate; the message names the field and says what to do."""


def parse_spec_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate `raw` (a manifest's spec) and return it defaulted, camelCase, JSON-compatible."""
    try:
        model = parse_spec(raw)
    except SpecError as error:
        raise InvalidSpecError(f"{error}; fix the FineTuneJob spec and apply it again") from None
    return model.model_dump(by_alias=True, mode="json")


@dataclasses.dataclass(frozen=True)
class JobView:
    """The parts of a FineTuneJob the operator decides on."""

    name: str
    namespace: str
    uid: str
    generation: int
    labels: dict[str, str]
    spec: dict[str, Any]
    status: dict[str, Any]
    deleting: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> JobView:
        """From a FineTuneJob object as the API returns it; raises InvalidSpecError on a bad spec."""
        metadata = body.get("metadata") or {}
        return cls(
            name=metadata["name"],
            namespace=metadata.get("namespace", "default"),
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 0),
            labels=dict(metadata.get("labels") or {}),
            spec=parse_spec_dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            deleting=bool(metadata.get("deletionTimestamp")),
        )

    # Convenience accessors over the defaulted spec (wire names, see the module docstring).
    @property
    def resources(self) -> dict[str, Any]:
        return self.spec.get("resources") or {}

    @property
    def run_policy(self) -> dict[str, Any]:
        return self.spec.get("runPolicy") or {}

    @property
    def workers(self) -> int:
        return int(self.resources.get("workers") or 1)

    @property
    def gpus_per_worker(self) -> int:
        return int(self.resources.get("gpusPerWorker") or 0)

    @property
    def suspend(self) -> bool:
        return bool(self.run_policy.get("suspend"))

    @property
    def max_restarts(self) -> int:
        return int(self.run_policy.get("maxRestarts", 3))
