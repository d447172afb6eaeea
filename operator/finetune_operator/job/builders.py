"""Manifests of a FineTuneJob's children: the headless Service and one Indexed Job per attempt (D3).

Pure functions from a JobView (plus operator settings) to plain dicts, so they are tested without a
cluster and the I/O layer only sends them. The launch contract (command, env, ports) is the one in
docs/architecture.md, "Contracts between components".
"""

from __future__ import annotations

import copy
import json
from typing import Any

from finetune_api import parse_spec
from finetune_api.constants import API_VERSION, KIND
from finetune_operator import naming
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings

EXIT_INVALID_CONFIG = 78
"""The trainer's exit code for invalid configuration or data (EX_CONFIG): permanent, no restart (D4)."""

# podFailurePolicy rule indexes; failure_policy reads them back from the Job's Failed condition.
RULE_INVALID_CONFIG = 0
RULE_DISRUPTION = 1

# Keys of the storage Secret passed through as env (each optional: s3, gs and az need different ones).
SECRET_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "HF_TOKEN",
)


def owner_reference(job: JobView) -> dict[str, Any]:
    """Makes the child go when the FineTuneJob goes (garbage collection), and marks us its controller."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_service(job: JobView) -> dict[str, Any]:
    """The headless Service that gives every worker pod a DNS name: <job>-a<attempt>-<index>.<job>."""
    master_port = naming.master_port(job.uid)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": naming.service_name(job.name),
            "namespace": job.namespace,
            "labels": naming.child_labels(job.name, job.uid),
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "clusterIP": "None",
            # Rendezvous needs rank 0's name before any pod is Ready.
            "publishNotReadyAddresses": True,
            "selector": {naming.LABEL_JOB_UID: job.uid, naming.LABEL_MANAGED_BY: naming.MANAGED_BY},
            "ports": [
                {"name": "rendezvous", "port": master_port, "targetPort": master_port},
                {"name": "metrics", "port": naming.METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def trainer_spec(job: JobView, settings: Settings) -> dict[str, Any]:
    """The spec the trainer gets in FINETUNE_JOB_SPEC: the defaulted spec, plus operator defaults."""
    spec = copy.deepcopy(job.spec)
    checkpoint = spec.get("checkpoint")
    if settings.default_checkpoint_uri and isinstance(checkpoint, dict) and not checkpoint.get("uri"):
        checkpoint["uri"] = f"{settings.default_checkpoint_uri}/{job.namespace}/{job.name}"
    if "image" in spec and not spec.get("image"):
        spec["image"] = settings.default_image
    return spec


def checkpoint_base_uri(job: JobView, settings: Settings) -> str:
    """Where this job's checkpoints go: spec.checkpoint.uri, the operator default, or <output>/checkpoints."""
    return parse_spec(trainer_spec(job, settings)).effective_checkpoint_uri


def torchrun_command(job: JobView, attempt: int) -> list[str]:
    """Exec form: `finetune_trainer.launch` runs torchrun with these arguments and forwards SIGTERM.

    The launcher (not torchrun itself) is the entry point because torchrun exits 1 for any worker
    failure; the launcher restores the trainer's exit code (78 permanent, 143 stopped after a
    checkpoint) and termination message, which the failure policy depends on (D4).
    """
    return [
        "python",
        "-m",
        "finetune_trainer.launch",
        f"--nnodes={job.workers}",
        f"--nproc-per-node={max(1, job.gpus_per_worker)}",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        f"--master-addr={naming.master_address(job.name, attempt)}",
        f"--master-port={naming.master_port(job.uid)}",
        "-m",
        "finetune_trainer",
    ]


def _env(job: JobView, attempt: int, settings: Settings) -> list[dict[str, Any]]:
    storage = job.spec.get("storage") or {}
    endpoint = storage.get("endpoint")
    env: list[dict[str, Any]] = [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
            },
        },
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "FINETUNE_JOB_NAME", "value": job.name},
        {"name": "FINETUNE_JOB_NAMESPACE", "value": job.namespace},
        {"name": "FINETUNE_ATTEMPT", "value": str(attempt)},
        {"name": "FINETUNE_METRICS_PORT", "value": str(naming.METRICS_PORT)},
        {"name": "FINETUNE_JOB_SPEC", "value": json.dumps(trainer_spec(job, settings), sort_keys=True)},
    ]
    secret = (storage.get("secretRef") or {}).get("name")
    if secret:
        for key in SECRET_ENV_KEYS:
            if key == "AWS_ENDPOINT_URL" and endpoint:
                continue  # spec.storage.endpoint wins over the Secret's
            env.append(
                {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
            )
    if endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": endpoint})
    if storage.get("region"):
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage["region"]})
    return env


def _resources(job: JobView) -> dict[str, Any]:
    resources = job.resources
    amounts: dict[str, str] = {}
    if resources.get("cpu"):
        amounts["cpu"] = str(resources["cpu"])
    if resources.get("memory"):
        amounts["memory"] = str(resources["memory"])
    if job.gpus_per_worker > 0:
        amounts[resources.get("gpuResource") or "nvidia.com/gpu"] = str(job.gpus_per_worker)
    if not amounts:
        return {}
    # requests == limits: Guaranteed QoS, and extended resources (GPUs) require it anyway.
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _container(job: JobView, attempt: int, settings: Settings) -> dict[str, Any]:
    return {
        "name": naming.CONTAINER_NAME,
        "image": job.spec.get("image") or settings.default_image,
        "command": torchrun_command(job, attempt),
        "env": _env(job, attempt, settings),
        "ports": [
            {"name": "metrics", "containerPort": naming.METRICS_PORT, "protocol": "TCP"},
            {"name": "rendezvous", "containerPort": naming.master_port(job.uid), "protocol": "TCP"},
        ],
        "resources": _resources(job),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _pod_spec(job: JobView, attempt: int, settings: Settings) -> dict[str, Any]:
    resources = job.resources
    pod: dict[str, Any] = {
        "subdomain": naming.service_name(job.name),
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": int(job.run_policy.get("terminationGracePeriodSeconds") or 300),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(job, attempt, settings)],
    }
    if resources.get("nodeSelector"):
        pod["nodeSelector"] = dict(resources["nodeSelector"])
    if resources.get("tolerations"):
        pod["tolerations"] = [
            {key: value for key, value in toleration.items() if value is not None}
            for toleration in resources["tolerations"]
        ]
    if resources.get("affinity"):
        pod["affinity"] = copy.deepcopy(resources["affinity"])
    if resources.get("priorityClassName"):
        pod["priorityClassName"] = resources["priorityClassName"]
    return pod


def queue_name(job: JobView) -> str | None:
    """The Kueue LocalQueue the FineTuneJob is labelled with, if any."""
    return job.labels.get(naming.LABEL_KUEUE_QUEUE) or None


def build_job(job: JobView, attempt: int, settings: Settings) -> dict[str, Any]:
    """The Indexed batch/v1 Job of attempt `attempt` (1-based): one pod per worker, all or nothing."""
    labels = naming.child_labels(job.name, job.uid, attempt)
    job_labels = dict(labels)
    queue = queue_name(job)
    if queue:
        job_labels[naming.LABEL_KUEUE_QUEUE] = queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": naming.attempt_job_name(job.name, attempt),
            "namespace": job.namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": job.workers,
            "parallelism": job.workers,
            "backoffLimit": 0,
            # Kueue admits a suspended Job as a gang by unsuspending it.
            "suspend": bool(queue),
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": naming.CONTAINER_NAME,
                            "operator": "In",
                            "values": [EXIT_INVALID_CONFIG],
                        },
                    },
                    {
                        "action": "FailJob",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(job, attempt, settings)},
        },
    }
