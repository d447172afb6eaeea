"""The wire contract between the operator and the trainer, written once for both sides.

The operator and the trainer run in different processes, images and (possibly) versions, and meet
only through what Kubernetes carries between them: environment variables, an exit code, a
termination message, a Prometheus endpoint and the checkpoint layout in object storage. Each of
those names and numbers lives here and both sides import it, so a rename on one side cannot drift
from the other unnoticed. docs/architecture.md, "Contracts between components", says what each
means; this module only holds the values.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------------------------------------
# Exit codes (docs/architecture.md, "Exit-code contract")

EXIT_OK: Final = 0
"""Training finished; rank 0's termination message is the completion summary (JSON)."""
EXIT_INVALID_CONFIG: Final = 78
"""EX_CONFIG (sysexits.h): invalid configuration or data. Permanent: the job fails, no restart."""
EXIT_PREEMPTED: Final = 143
"""128 + SIGTERM: the trainer stopped on request after committing its checkpoint."""
EXIT_FAILURE: Final = 1
"""The trainer's own code for an unexpected error; any code not listed above is retryable."""

# ---------------------------------------------------------------------------------------------
# Termination message

TERMINATION_LOG_PATH: Final = "/dev/termination-log"
"""Where the kubelet reads the container's termination message (the pod's terminationMessagePath)."""
TERMINATION_MESSAGE_MAX_CHARS: Final = 1024
"""Kubernetes keeps at most 4096 bytes of a termination message; the trainer stays well below."""

# Keys of the one-line JSON completion summary rank 0 writes on exit 0.
SUMMARY_STEP: Final = "step"
SUMMARY_TOTAL_STEPS: Final = "totalSteps"
SUMMARY_EPOCH: Final = "epoch"
SUMMARY_TRAIN_LOSS: Final = "trainLoss"
SUMMARY_EVAL_LOSS: Final = "evalLoss"
SUMMARY_BEST_METRIC: Final = "bestMetric"
SUMMARY_METRIC: Final = "metric"
"""Name of the metric that bestMetric measures (training.evaluation.metric)."""
SUMMARY_METRICS: Final = "metrics"
"""Numbers of the final evaluation (eval_* and test_*)."""
SUMMARY_OUTPUT: Final = "output"
"""URI the final model was written to."""
SUMMARY_PROGRESS_KEYS: Final = (
    SUMMARY_STEP,
    SUMMARY_TOTAL_STEPS,
    SUMMARY_EPOCH,
    SUMMARY_TRAIN_LOSS,
    SUMMARY_EVAL_LOSS,
    SUMMARY_BEST_METRIC,
)
"""Summary keys that are also `status.progress` fields (same names), copied over on success."""

# ---------------------------------------------------------------------------------------------
# Metrics served by global rank 0 (docs/architecture.md, "Progress is pulled")

METRICS_PORT: Final = 9090
METRICS_PORT_NAME: Final = "metrics"
"""Name of the container (and Service) port the operator scrapes."""
METRICS_PATH: Final = "/metrics"
METRIC_PREFIX: Final = "finetune_trainer_"

# Series names without the prefix. Gauges unless noted.
METRIC_STEP: Final = "step"
METRIC_TOTAL_STEPS: Final = "total_steps"
METRIC_EPOCH: Final = "epoch"
METRIC_TRAIN_LOSS: Final = "train_loss"
METRIC_EVAL_LOSS: Final = "eval_loss"
METRIC_EVAL_METRIC: Final = "eval_metric"
METRIC_EVAL_METRIC_LABEL: Final = "metric"
"""Label of eval_metric naming the metric (accuracy, f1_macro...)."""
METRIC_BEST_METRIC: Final = "best_metric"
METRIC_LEARNING_RATE: Final = "learning_rate"
METRIC_SAMPLES_PER_SECOND: Final = "samples_per_second"
METRIC_TOKENS_PER_SECOND: Final = "tokens_per_second"
METRIC_CHECKPOINT_LAST_STEP: Final = "checkpoint_last_step"
"""0 means "no checkpoint committed yet"."""
METRIC_CHECKPOINT_LAST_TIMESTAMP: Final = "checkpoint_last_timestamp_seconds"
METRIC_CHECKPOINT_SAVE_DURATION: Final = "checkpoint_save_duration_seconds"
METRIC_CHECKPOINT_UPLOAD_DURATION: Final = "checkpoint_upload_duration_seconds"
METRIC_CHECKPOINT_UPLOAD_BYTES: Final = "checkpoint_upload_bytes"
"""A counter: exposed as ``<prefix>checkpoint_upload_bytes_total``."""
METRIC_INFO: Final = "info"
"""An Info series (versions, task, method): exposed as ``<prefix>info``."""

# ---------------------------------------------------------------------------------------------
# Checkpoint layout in object storage (docs/architecture.md, "Checkpoint commit protocol")

CHECKPOINT_DIR_PREFIX: Final = "checkpoint-"
"""A checkpoint lives in ``<checkpoint uri>/checkpoint-<step>/``."""
MANIFEST_NAME: Final = "manifest.json"
"""Written last: a checkpoint directory without a valid manifest does not exist."""
RANK_PART_PREFIX: Final = "_rank-"
"""``_rank-<r>.json``: what rank r uploaded, merged by rank 0 into the manifest."""
DEFAULT_CHECKPOINT_SUBDIR: Final = "checkpoints"
"""Checkpoints go to ``<output.uri>/checkpoints`` when spec.checkpoint.uri is unset."""


def checkpoint_dir_name(step: int) -> str:
    """``checkpoint-<step>``: the directory of the checkpoint of optimizer step `step`."""
    return f"{CHECKPOINT_DIR_PREFIX}{step}"


def checkpoint_uri(base_uri: str, step: int) -> str:
    """The URI of one committed checkpoint under a job's checkpoint URI."""
    return f"{base_uri.rstrip('/')}/{checkpoint_dir_name(step)}"


# ---------------------------------------------------------------------------------------------
# Environment of the trainer container (set by the operator, read by the trainer)

ENV_JOB_SPEC: Final = "FINETUNE_JOB_SPEC"
"""The parsed, defaulted spec as camelCase JSON."""
ENV_JOB_NAME: Final = "FINETUNE_JOB_NAME"
ENV_JOB_NAMESPACE: Final = "FINETUNE_JOB_NAMESPACE"
ENV_ATTEMPT: Final = "FINETUNE_ATTEMPT"
ENV_METRICS_PORT: Final = "FINETUNE_METRICS_PORT"
ENV_POD_IP: Final = "POD_IP"
"""The pod's own address (fieldRef status.podIP): the metrics server binds it."""
ENV_JOB_COMPLETION_INDEX: Final = "JOB_COMPLETION_INDEX"
"""The worker's index in the Indexed Job: torchrun's node rank."""
ENV_TERMINATION_LOG: Final = "FINETUNE_TERMINATION_LOG"
"""Overrides TERMINATION_LOG_PATH (outside a container)."""
ENV_CPU_LIMIT: Final = "FINETUNE_CPU_LIMIT"
"""The container's CPU limit (downward API resourceFieldRef limits.cpu, whole CPUs): sizes the
trainer's thread pools."""

# ---------------------------------------------------------------------------------------------
# The worker's filesystem: scratch space and mounted PersistentVolumeClaims

SCRATCH_DIR: Final = "/scratch"
"""Mount path of the worker's scratch emptyDir (sized by spec.resources.ephemeralStorage)."""
ENV_WORK_DIR: Final = "FINETUNE_WORK_DIR"
"""The trainer's local work directory: model download, HF checkpoints, output staging."""
SCRATCH_ENV: Final = {
    ENV_WORK_DIR: f"{SCRATCH_DIR}/work",
    "HF_HOME": f"{SCRATCH_DIR}/hf",
    "TMPDIR": SCRATCH_DIR,
}
"""What the operator points into the scratch volume, so nothing large lands in the image's
writable layer (which the image's own defaults under /tmp would use)."""
ENV_PVC_ROOT: Final = "FINETUNE_PVC_ROOT"
DEFAULT_PVC_ROOT: Final = "/mnt/pvc"
"""``pvc://<claim>/<path>`` is ``$FINETUNE_PVC_ROOT/<claim>/<path>``: the operator mounts every
claim the spec's URIs name at ``<root>/<claim>``."""


def pvc_claim(uri: str) -> str | None:
    """The PersistentVolumeClaim a ``pvc://<claim>/<path>`` URI names (None for other schemes)."""
    if not uri.startswith("pvc://"):
        return None
    return uri[len("pvc://") :].strip("/").split("/", 1)[0] or None
