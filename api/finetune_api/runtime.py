"""Spec sections that say *where and how* a job runs: resources, checkpoints, output, storage, run policy.

These map onto Kubernetes objects built by the operator (the Indexed Job's pod template) and onto the
trainer's storage I/O. Names follow the Kubernetes API where one exists (nodeSelector, tolerations,
affinity, priorityClassName, activeDeadlineSeconds, ttlSecondsAfterFinished, suspend).
"""

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from finetune_api.base import ApiModel
from finetune_api.fields import KubernetesName, Quantity, ShortText, StorageUri, env_text
from finetune_api.rules import Rule

LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]


class Toleration(ApiModel):
    """A Kubernetes toleration (core/v1 Toleration) copied to every worker pod."""

    RULES = (
        Rule(
            field="value",
            message="must be empty when operator is Exists",
            cel="self.operator != 'Exists' || !has(self.value)",
            holds=lambda t: t.operator != "Exists" or t.value is None,
        ),
        Rule(
            field="key",
            message="is required unless operator is Exists",
            cel="has(self.key) || self.operator == 'Exists'",
            holds=lambda t: t.key is not None or t.operator == "Exists",
        ),
    )

    key: Annotated[str, Field(max_length=317)] | None = Field(
        default=None, description="Taint key to match; absent with operator Exists matches every taint."
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal (to value).")
    value: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="Taint value for operator Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; absent matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


def _positive_quantity(text: str) -> bool:
    """A quantity (already checked against QUANTITY_PATTERN) is above zero: its sign and mantissa
    decide, the suffix or exponent only scales it."""
    mantissa = re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)", text)
    return not text.startswith("-") and mantissa is not None and float(mantissa.group(1)) > 0


class Resources(ApiModel):
    """The gang of workers: how many, what each gets, and where they may run."""

    RULES = (
        Rule(
            field="ephemeralStorage",
            message="must be greater than zero, e.g. 50Gi: it sizes each worker's scratch space",
            # has(): the API server checks the section's own `default: {}` before nested defaults apply.
            cel=(
                "!has(self.ephemeralStorage) || "
                "quantity(string(self.ephemeralStorage)).isGreaterThan(quantity('0'))"
            ),
            holds=lambda r: _positive_quantity(r.ephemeral_storage),
        ),
    )

    workers: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Worker pods (torchrun nodes). All start together and restart together.",
    )
    gpus_per_worker: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "GPUs per worker (requests and limits of gpuResource); one training process per GPU. 0 trains "
            "on CPU."
        ),
    )
    gpu_resource: ShortText = Field(
        default="nvidia.com/gpu", description="Extended resource name of the GPUs (e.g. amd.com/gpu)."
    )
    cpu: Quantity | None = Field(
        default=None, description="CPU request and limit per worker, e.g. 16 or 500m."
    )
    memory: Quantity | None = Field(
        default=None, description="Memory request and limit per worker, e.g. 200Gi."
    )
    ephemeral_storage: Quantity = Field(
        default="50Gi",
        description=(
            "Scratch space per worker: the size limit of the emptyDir mounted at /scratch, where the "
            "trainer downloads the model and stages checkpoints and the output (FINETUNE_WORK_DIR, "
            "HF_HOME and TMPDIR point there), and the worker container's ephemeral-storage request and "
            "limit. Size it for the model, a checkpoint and the output together. A worker that writes "
            "more is evicted by the kubelet, which counts as a failure against runPolicy.maxRestarts."
        ),
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        json_schema_extra={"default": {}},
        description="Node labels a worker's node must carry (pod nodeSelector).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"default": []},
        description="Taints the workers tolerate (pod tolerations).",
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Pod affinity and anti-affinity rules (core/v1 Affinity), copied to the worker pods unchanged."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: KubernetesName | None = Field(
        default=None, description="PriorityClass of the worker pods; decides who is preempted first."
    )


class Checkpoint(ApiModel):
    """Where and how often training state is committed, so a restarted gang resumes where it stopped."""

    uri: StorageUri | None = Field(
        default=None,
        description=(
            "Directory for checkpoints (<uri>/checkpoint-<step>/ plus a manifest written last). Absent: "
            "<output.uri>/checkpoints. hf:// is refused. On pvc:// with more than one worker the claim "
            "must be ReadWriteMany: every rank writes its own files."
        ),
    )
    every_steps: int = Field(
        default=500, ge=1, le=10**9, description="Commit a checkpoint every this many optimizer steps."
    )
    every_seconds: int | None = Field(
        default=None,
        ge=60,
        le=10**7,
        description="Also commit when this many seconds passed since the last one.",
    )
    keep: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Committed checkpoints kept; older ones are deleted after a newer one commits.",
    )


class Output(ApiModel):
    """Where the final model goes and in which form."""

    uri: StorageUri = Field(
        description=(
            "Directory the final model is written to (HF save_pretrained layout). pvc://<claim>/<path> "
            "writes to a PersistentVolumeClaim mounted read-write into every worker (ReadWriteMany when "
            "there is more than one worker)."
        )
    )
    merge_lora: bool = Field(
        default=True,
        description=(
            "With lora: merge the adapters into the base weights (a standalone model). false saves only "
            "the adapter."
        ),
    )
    save_tokenizer: bool = Field(default=True, description="Save the tokenizer next to the model.")
    write_model_card: bool = Field(
        default=True, description="Write a README.md model card with the spec, data and final metrics."
    )


class SecretRef(ApiModel):
    """A Secret in the job's namespace."""

    name: KubernetesName = Field(description="Name of the Secret.")


class Storage(ApiModel):
    """Object-storage credentials and endpoint (the operator passes them to the trainer as env)."""

    secret_ref: SecretRef | None = Field(
        default=None,
        description=(
            "Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (optional AWS_ENDPOINT_URL) or the gs/az "
            "equivalents, passed to the workers as env. Required when any URI uses s3://, gs:// or az://."
        ),
    )
    endpoint: env_text(2048, r"^https?://[^\s]+$") | None = Field(  # type: ignore[valid-type]
        default=None,
        description=(
            "S3-compatible endpoint URL, e.g. https://minio.example:9000. Absent uses the provider's default."
        ),
    )
    region: env_text(64) | None = Field(  # type: ignore[valid-type]
        default=None, description="Storage region, e.g. eu-west-1."
    )


class RunPolicy(ApiModel):
    """Lifecycle of the job: restarts, deadlines, clean-up, suspension and shutdown grace."""

    max_restarts: int = Field(
        default=3,
        ge=0,
        le=1000,
        description=(
            "Gang restarts after retryable failures before the job fails. Preemptions, evictions and "
            "node loss "
            "do not count."
        ),
    )
    backoff_seconds: int = Field(
        default=10, ge=0, le=3600, description="Wait before starting the next attempt after a failure."
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Fail the job (reason DeadlineExceeded) when it has run this long. May be changed.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Delete the finished job (and its children) this long after it ends. May be changed.",
    )
    suspend: bool = Field(
        default=False,
        description=(
            "true stops the workers after a checkpoint and keeps the job; false resumes it. May be changed."
        ),
    )
    termination_grace_period_seconds: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="Time a worker gets after SIGTERM to commit a final checkpoint before SIGKILL.",
    )
