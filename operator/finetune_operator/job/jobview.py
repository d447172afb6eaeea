"""A FineTuneJob as the operator's pure logic sees it: metadata, the parsed spec, status.

The spec is parsed once per pass with the API models (`finetune_api.parse_spec`: the same defaults
and refusals as `kubectl apply`), and the operator reads it only through the typed accessors
below, so no default is restated here (docs/architecture.md, "One typed spec"). Two forms are
kept: `parsed`, the `FineTuneJobSpec` the accessors read, and `spec`, its camelCase JSON dump,
which is what the trainer receives and what builders copy into child objects unchanged
(tolerations, affinity). Values that combine the spec with operator settings (the checkpoint URI)
are resolved here too, once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from finetune_api import FineTuneJobSpec, SpecError, parse_spec


class InvalidSpecError(ValueError):
    """The spec does not validate; the message names the field and says what to do."""


def parse_job_spec(raw: dict[str, Any]) -> FineTuneJobSpec:
    """Validate `raw` (a manifest's spec) and fill in every default; InvalidSpecError names the field."""
    try:
        return parse_spec(raw)
    except SpecError as error:
        raise InvalidSpecError(f"{error}; fix the FineTuneJob spec and apply it again") from None


def resolve_checkpoint_uri(
    parsed: FineTuneJobSpec, namespace: str, name: str, default_root: str | None
) -> str:
    """Where a job's checkpoints go: spec.checkpoint.uri, else <operator default>/<namespace>/<name>
    when the operator has a default root (`--default-checkpoint-uri`), else <output.uri>/checkpoints."""
    if parsed.checkpoint.uri is None and default_root:
        return f"{default_root.rstrip('/')}/{namespace}/{name}"
    return parsed.effective_checkpoint_uri


@dataclasses.dataclass(frozen=True)
class JobView:
    """The parts of a FineTuneJob the operator decides on."""

    name: str
    namespace: str
    uid: str
    generation: int
    labels: dict[str, str]
    parsed: FineTuneJobSpec
    spec: dict[str, Any]  # `parsed` dumped camelCase (see the module docstring)
    status: dict[str, Any]
    checkpoint_uri: str
    deleting: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any], *, default_checkpoint_uri: str | None = None) -> JobView:
        """From a FineTuneJob object as the API returns it; raises InvalidSpecError on a bad spec.

        `default_checkpoint_uri` is the operator's `--default-checkpoint-uri` root, if any.
        """
        metadata = body.get("metadata") or {}
        name = metadata["name"]
        namespace = metadata.get("namespace", "default")
        parsed = parse_job_spec(body.get("spec") or {})
        return cls(
            name=name,
            namespace=namespace,
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 0),
            labels=dict(metadata.get("labels") or {}),
            parsed=parsed,
            spec=parsed.model_dump(by_alias=True, mode="json"),
            status=dict(body.get("status") or {}),
            checkpoint_uri=resolve_checkpoint_uri(parsed, namespace, name, default_checkpoint_uri),
            deleting=bool(metadata.get("deletionTimestamp")),
        )

    # Typed reads of the parsed spec: the API models hold every default.
    @property
    def resources(self) -> dict[str, Any]:
        """spec.resources in wire form, for fields copied into the pod unchanged."""
        return self.spec["resources"]

    @property
    def run_policy(self) -> dict[str, Any]:
        """spec.runPolicy in wire form."""
        return self.spec["runPolicy"]

    @property
    def workers(self) -> int:
        return self.parsed.resources.workers

    @property
    def gpus_per_worker(self) -> int:
        return self.parsed.resources.gpus_per_worker

    @property
    def gpu_resource(self) -> str:
        return self.parsed.resources.gpu_resource

    @property
    def ephemeral_storage(self) -> str:
        """Scratch space per worker (a Kubernetes quantity): emptyDir sizeLimit and ephemeral-storage."""
        return self.parsed.resources.ephemeral_storage

    @property
    def image(self) -> str | None:
        """spec.image; None means the operator's default trainer image."""
        return self.parsed.image

    @property
    def suspend(self) -> bool:
        return self.parsed.run_policy.suspend

    @property
    def max_restarts(self) -> int:
        return self.parsed.run_policy.max_restarts

    @property
    def backoff_seconds(self) -> int:
        return self.parsed.run_policy.backoff_seconds

    @property
    def active_deadline_seconds(self) -> int | None:
        return self.parsed.run_policy.active_deadline_seconds

    @property
    def ttl_seconds_after_finished(self) -> int | None:
        return self.parsed.run_policy.ttl_seconds_after_finished

    @property
    def termination_grace_period_seconds(self) -> int:
        return self.parsed.run_policy.termination_grace_period_seconds

    @property
    def evaluation_metric(self) -> str:
        return self.parsed.training.evaluation.metric

    @property
    def output_uri(self) -> str:
        return self.parsed.output.uri
