"""Manifests of a FineTuneJob's children: the headless Service and one Indexed Job per attempt.

Pure functions from a JobView (plus operator settings) to plain dicts, so they are tested without a
cluster and the I/O layer only sends them. The launch contract (command, env, ports, the spec
file) is the one in docs/architecture.md, "Contracts between components".

Nothing a user wrote may reach the kubelet's `$(VAR)` expansion of env values and args: every
literal is escaped (`$` -> `$$`), literal env comes before the Secret's keys (expansion only sees
earlier variables), and the spec itself travels as a file (a ConfigMap), never in env or args.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from finetune_api import contract
from finetune_api.constants import API_VERSION, KIND
from finetune_operator import naming
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings

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


SPEC_VOLUME = "trainer-spec"
SPEC_DIR = "/etc/finetune"
SPEC_FILE = "spec.json"
SPEC_PATH = f"{SPEC_DIR}/{SPEC_FILE}"
"""Where the trainer reads its spec (`--config`), mounted read-only from the job's ConfigMap."""

SCRATCH_VOLUME = "scratch"
"""The worker's scratch emptyDir at contract.SCRATCH_DIR, sized by resources.ephemeralStorage."""
PVC_VOLUME_PREFIX = "pvc-"
"""Volumes of the claims that pvc:// URIs name: pvc-0, pvc-1, ... in claim-name order."""


def literal(value: str) -> str:
    """`value` as the kubelet will pass it: `$$` is its escape for a literal `$`, so no `$(VAR)`
    in user text can ever expand to another variable (such as a Secret's key)."""
    return value.replace("$", "$$")


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
    """The headless Service that gives every worker pod of a gang a DNS name:
    <job>-a<attempt>-<index>.<job> (a single-worker job has none: naming.has_service)."""
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
                {
                    "name": contract.METRICS_PORT_NAME,
                    "port": contract.METRICS_PORT,
                    "targetPort": contract.METRICS_PORT_NAME,
                },
            ],
        },
    }


def trainer_spec(job: JobView, settings: Settings) -> dict[str, Any]:
    """The spec the trainer gets in its spec file: the defaulted spec, plus operator defaults."""
    spec = copy.deepcopy(job.spec)
    spec["checkpoint"]["uri"] = job.checkpoint_uri  # resolved once, in JobView
    if "image" in spec and not spec.get("image"):
        spec["image"] = settings.default_image
    return spec


def spec_config_map_name(job_name: str) -> str:
    """The ConfigMap holding the trainer's spec: one per FineTuneJob (its spec is immutable)."""
    return f"{job_name}-trainer-spec"


def build_spec_config_map(job: JobView, settings: Settings) -> dict[str, Any]:
    """The trainer's spec as a file, owned by the FineTuneJob (garbage-collected with it).

    A file, not an env var: a large spec (many labels, class weights) would exceed the kernel's
    per-argument limit, and a file is never subject to `$(VAR)` expansion.
    """
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec_config_map_name(job.name),
            "namespace": job.namespace,
            "labels": naming.child_labels(job.name, job.uid),
            "ownerReferences": [owner_reference(job)],
        },
        "immutable": True,
        "data": {SPEC_FILE: json.dumps(trainer_spec(job, settings), sort_keys=True)},
    }


def effective_image(job: JobView, settings: Settings) -> str:
    """The image the workers run: spec.image, else the operator's default trainer image."""
    return job.image or settings.default_image


def torchrun_command(job: JobView, attempt: int) -> list[str]:
    """Exec form: `finetune_trainer.launch` runs torchrun with these arguments and forwards SIGTERM.

    The launcher (not torchrun itself) is the entry point because torchrun exits 1 for any worker
    failure; the launcher restores the trainer's exit code (78 permanent, 143 stopped after a
    checkpoint) and termination message, which the failure policy depends on
    (docs/architecture.md, "Exit-code contract").
    """
    return [
        "python",
        "-m",
        "finetune_trainer.launch",
        f"--nnodes={job.workers}",
        f"--nproc-per-node={max(1, job.gpus_per_worker)}",
        f"--node-rank=$({contract.ENV_JOB_COMPLETION_INDEX})",  # the one intended expansion
        literal(f"--master-addr={naming.master_address(job.name, attempt, job.workers)}"),
        f"--master-port={naming.master_port(job.uid)}",
        "-m",
        "finetune_trainer",
        f"--config={SPEC_PATH}",
    ]


def _env(job: JobView, attempt: int) -> list[dict[str, Any]]:
    """Field refs, then escaped literals, then the Secret's keys (see the module docstring)."""
    storage = job.spec.get("storage") or {}
    literals = {
        contract.ENV_JOB_NAME: job.name,
        contract.ENV_JOB_NAMESPACE: job.namespace,
        contract.ENV_ATTEMPT: str(attempt),
        contract.ENV_METRICS_PORT: str(contract.METRICS_PORT),
        **contract.SCRATCH_ENV,  # the work dir, HF cache and temp files go to the scratch volume
        contract.ENV_PVC_ROOT: contract.DEFAULT_PVC_ROOT,
    }
    # spec.storage wins over the Secret's keys of the same name (which are then not passed at all).
    if storage.get("endpoint"):
        literals["AWS_ENDPOINT_URL"] = storage["endpoint"]
    if storage.get("region"):
        literals["AWS_DEFAULT_REGION"] = storage["region"]
    env: list[dict[str, Any]] = [
        {
            "name": contract.ENV_JOB_COMPLETION_INDEX,
            "valueFrom": {
                "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
            },
        },
        {"name": contract.ENV_POD_IP, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {  # sizes the trainer's thread pools; without a limit the kubelet gives the node's CPUs
            "name": contract.ENV_CPU_LIMIT,
            "valueFrom": {
                "resourceFieldRef": {"containerName": naming.CONTAINER_NAME, "resource": "limits.cpu"}
            },
        },
    ]
    env.extend({"name": name, "value": literal(value)} for name, value in literals.items())
    secret = (storage.get("secretRef") or {}).get("name")
    if secret:
        env.extend(
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
            for key in SECRET_ENV_KEYS
            if key not in literals
        )
    return env


def claim_volumes(job: JobView) -> list[tuple[str, str, bool]]:
    """(volume name, claim, read-only) for every PersistentVolumeClaim a pvc:// URI of the spec names.

    The trainer maps `pvc://<claim>/<path>` to `$FINETUNE_PVC_ROOT/<claim>/<path>`, so each claim is
    mounted at `<root>/<claim>`: read-only when only the model or data are read from it, read-write
    when the checkpoint or output URI (the resolved one) is on it.
    """
    parsed = job.parsed
    read = [parsed.model.uri, parsed.dataset.train, parsed.dataset.validation, parsed.dataset.test]
    written = [job.checkpoint_uri, job.output_uri]
    claims: dict[str, bool] = {}
    for uris, read_only in ((read, True), (written, False)):
        for uri in uris:
            claim = contract.pvc_claim(uri or "")
            if claim:
                claims[claim] = claims.get(claim, True) and read_only
    return [(f"{PVC_VOLUME_PREFIX}{n}", claim, claims[claim]) for n, claim in enumerate(sorted(claims))]


def _resources(job: JobView) -> dict[str, Any]:
    resources = job.resources
    amounts: dict[str, str] = {}
    if resources.get("cpu"):
        amounts["cpu"] = str(resources["cpu"])
    if resources.get("memory"):
        amounts["memory"] = str(resources["memory"])
    if job.gpus_per_worker > 0:
        amounts[job.gpu_resource] = str(job.gpus_per_worker)
    # The scratch volume's size: the kubelet evicts a worker that writes more (a counted failure).
    amounts["ephemeral-storage"] = job.ephemeral_storage
    # requests == limits: Guaranteed QoS, and extended resources (GPUs) require it anyway.
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _container(job: JobView, attempt: int, settings: Settings) -> dict[str, Any]:
    image = effective_image(job, settings)
    container: dict[str, Any] = {
        "name": naming.CONTAINER_NAME,
        "image": image,
        "command": torchrun_command(job, attempt),
        "env": _env(job, attempt),
        "volumeMounts": [
            {"name": SPEC_VOLUME, "mountPath": SPEC_DIR, "readOnly": True},
            {"name": SCRATCH_VOLUME, "mountPath": contract.SCRATCH_DIR},
            *(
                {"name": volume, "mountPath": f"{contract.DEFAULT_PVC_ROOT}/{claim}", "readOnly": read_only}
                for volume, claim, read_only in claim_volumes(job)
            ),
        ],
        "ports": [
            {"name": contract.METRICS_PORT_NAME, "containerPort": contract.METRICS_PORT, "protocol": "TCP"},
            {"name": "rendezvous", "containerPort": naming.master_port(job.uid), "protocol": "TCP"},
        ],
        "resources": _resources(job),
        "terminationMessagePath": contract.TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if image != settings.default_image:
        # Another tenant's private image cached on a node must not run by name: pull (and so
        # authenticate) every time. The platform's own default image keeps Kubernetes' default.
        container["imagePullPolicy"] = "Always"
    return container


def _pod_spec(job: JobView, attempt: int, settings: Settings) -> dict[str, Any]:
    resources = job.resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": job.termination_grace_period_seconds,
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
        "volumes": [
            {
                "name": SPEC_VOLUME,
                "configMap": {"name": spec_config_map_name(job.name), "defaultMode": 0o444},
            },
            {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": job.ephemeral_storage}},
            *(
                {"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
                for volume, claim, read_only in claim_volumes(job)
            ),
        ],
    }
    if naming.has_service(job.workers):  # the gang's DNS names: <pod hostname>.<service>
        pod["subdomain"] = naming.service_name(job.name)
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


DEADLINE_BACKSTOP_SECONDS = 300
"""How long past runPolicy.activeDeadlineSeconds an attempt's Job ends itself (issue 13 item 7)."""


def deadline_backstop(job: JobView) -> dict[str, Any]:
    """The Job's own activeDeadlineSeconds: a backstop for the operator's deadline rule.

    The operator fails the job at its deadline (counted from status.startTime) and deletes the
    attempt; should the operator be down or wedged, the Job controller still stops the workers a
    little later. Each attempt gets the whole deadline plus the margin (an attempt starts after
    startTime, so this is never earlier than the operator's rule); a deadline raised on a running
    job applies to attempts created after the change.
    """
    deadline = job.run_policy.get("activeDeadlineSeconds")
    return {"activeDeadlineSeconds": int(deadline) + DEADLINE_BACKSTOP_SECONDS} if deadline else {}


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
            **deadline_backstop(job),
            # Kueue admits a suspended Job as a gang by unsuspending it.
            "suspend": bool(queue),
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": naming.CONTAINER_NAME,
                            "operator": "In",
                            "values": [contract.EXIT_INVALID_CONFIG],
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
