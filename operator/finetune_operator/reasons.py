"""Every condition and Event reason the operator writes, and the Kubernetes reasons it reads.

A reason is part of the API: people and scripts match on it (`kubectl wait`, alerts on Events,
docs/monitoring.md), and the operator reads some back as data: Restarting=True with `WORKER_FAILED`
holds the backoff, Failed with `DEADLINE_EXCEEDED` keeps deleting leftover Jobs, Running with
`UNSCHEDULABLE` has already warned, the schedule drops a `SUCCESSFUL_CREATE` event when the create
failed. One name per reason, so the writer and the reader cannot drift apart (docs/architecture.md,
"Status conditions"). Tests keep the literal strings where they assert the wire value.
"""

from __future__ import annotations

from typing import Final

# --- FineTuneJob: the job's conditions -----------------------------------------------------------
INITIALIZING: Final = "Initializing"
"""Created=False before the first pass acted."""
NOT_STARTED: Final = "NotStarted"
ATTEMPT_CREATED: Final = "AttemptCreated"
WORKERS_STARTING: Final = "WorkersStarting"
ALL_WORKERS_RUNNING: Final = "AllWorkersRunning"
RUNNING: Final = "Running"
"""Restarting=False while the attempt runs."""
RESTARTING: Final = "Restarting"
"""Running=False between a failed or disrupted attempt and the next one."""
COMPLETED: Final = "Completed"
NOT_SUCCEEDED: Final = "NotSucceeded"
NOT_FAILED: Final = "NotFailed"
NOT_RUNNING: Final = "NotRunning"
SUSPENDED: Final = "Suspended"
NOT_SUSPENDED: Final = "NotSuspended"
RESUMED: Final = "Resumed"
QUEUED: Final = "Queued"
"""Running=False while the attempt's Job waits for its queue (Suspended carries Kueue's reason)."""
WAITING_FOR_ADMISSION: Final = "WaitingForAdmission"
"""Suspended=True when the suspended Job's own condition gives no reason."""
UNSCHEDULABLE: Final = "Unschedulable"
"""Ours on Running=False; also the scheduler's reason on PodScheduled=False (same word)."""
WORKER_FAILED: Final = "WorkerFailed"
DISRUPTED: Final = "Disrupted"
INVALID_CONFIGURATION: Final = "InvalidConfiguration"
EPHEMERAL_STORAGE_EXCEEDED: Final = "EphemeralStorageExceeded"
RESTART_LIMIT_EXCEEDED: Final = "RestartLimitExceeded"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
CHILD_REJECTED: Final = "ChildRejected"
INVALID_SPEC: Final = "InvalidSpec"
"""The spec does not parse (jobs, schedules and sweeps alike)."""
NO_PROGRESS: Final = "NoProgress"
PROGRESSING: Final = "Progressing"

# --- FineTuneJob: Events only --------------------------------------------------------------------
CHECKPOINT_COMMITTED: Final = "CheckpointCommitted"
NON_FINITE_LOSS: Final = "NonFiniteLoss"

# --- FineTuneJob: refusals by the operator's policies (job/policy.py) ---------------------------
IMAGE_NOT_ALLOWED: Final = "ImageNotAllowed"
STORAGE_NOT_ALLOWED: Final = "StorageNotAllowed"
PRIORITY_CLASS_NOT_ALLOWED: Final = "PriorityClassNotAllowed"
TOLERATION_NOT_ALLOWED: Final = "TolerationNotAllowed"

# --- FineTuneSchedule ----------------------------------------------------------------------------
SCHEDULING: Final = "Scheduling"
INVALID_TEMPLATE: Final = "InvalidTemplate"
MISSED_SCHEDULE: Final = "MissedSchedule"
MISSED_SCHEDULES: Final = "MissedSchedules"
JOB_ALREADY_ACTIVE: Final = "JobAlreadyActive"
SUCCESSFUL_CREATE: Final = "SuccessfulCreate"
SUCCESSFUL_DELETE: Final = "SuccessfulDelete"
FAILED_CREATE: Final = "FailedCreate"

# --- FineTuneSweep -------------------------------------------------------------------------------
TRIALS_RUNNING: Final = "TrialsRunning"
SWEEP_SUSPENDED: Final = "SweepSuspended"
TOO_MANY_FAILED_TRIALS: Final = "TooManyFailedTrials"
SAMPLER_UNAVAILABLE: Final = "SamplerUnavailable"
GOAL_REACHED: Final = "GoalReached"
ALL_TRIALS_FINISHED: Final = "AllTrialsFinished"
NO_TRIAL_SUCCEEDED: Final = "NoTrialSucceeded"
TRIAL_CREATED: Final = "TrialCreated"
TRIAL_SUCCEEDED: Final = "TrialSucceeded"
TRIAL_FAILED: Final = "TrialFailed"
TRIAL_PRUNED: Final = "TrialPruned"

# --- written by Kubernetes, read by the operator -------------------------------------------------
POD_EVICTED: Final = "Evicted"
"""Pod status.reason after a kubelet eviction."""
TERMINATION_BY_KUBELET: Final = "TerminationByKubelet"
EVICTION_BY_KUBELET: Final = "EvictionByKubelet"
"""DisruptionTarget condition reasons the kubelet sets when it stops or evicts a pod."""
POD_FAILURE_POLICY: Final = "PodFailurePolicy"
"""A Job's Failed/FailureTarget reason when one of its podFailurePolicy rules fired."""
