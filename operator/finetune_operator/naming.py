"""Names and labels of a FineTuneJob's children (docs/architecture.md "One Job per attempt" and
"Conventions").

Names are deterministic (job name + attempt number) so that an operator restarted at any point finds
what it created before and "already exists" means "done", never "duplicate".
"""

from __future__ import annotations

import re
import zlib

MANAGED_BY = "finetune-operator"
APP_NAME = "finetune-trainer"

LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB_NAME = "finetune.dev/job-name"
LABEL_JOB_UID = "finetune.dev/job-uid"
LABEL_ATTEMPT = "finetune.dev/attempt"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"

CONTAINER_NAME = "trainer"
METRICS_PORT = 9090
MASTER_PORT = 29500
MASTER_PORT_SPREAD = 500

_ATTEMPT_JOB = re.compile(r"^(?P<job>.+)-a(?P<attempt>[0-9]+)$")


def service_name(job_name: str) -> str:
    """The headless Service: pods resolve as <hostname>.<service>."""
    return job_name


def attempt_job_name(job_name: str, attempt: int) -> str:
    """The Indexed batch/v1 Job of one attempt: <job>-a<attempt>."""
    return f"{job_name}-a{attempt}"


def pod_hostname(job_name: str, attempt: int, index: int) -> str:
    """The hostname of worker `index`: the Job controller names it <job-name>-<index>."""
    return f"{attempt_job_name(job_name, attempt)}-{index}"


SINGLE_WORKER_MASTER_ADDRESS = "127.0.0.1"


def has_service(workers: int) -> bool:
    """A gang needs the headless Service so its workers find rank 0 by name; a single worker is rank
    0 itself and rendezvouses over loopback, so it gets none (one create less per job, issue 16)."""
    return workers > 1


def master_address(job_name: str, attempt: int, workers: int) -> str:
    """Rank 0's stable DNS name inside the namespace, <job>-a<attempt>-0.<service>; loopback for a
    single worker (see has_service)."""
    if not has_service(workers):
        return SINGLE_WORKER_MASTER_ADDRESS
    return f"{pod_hostname(job_name, attempt, 0)}.{service_name(job_name)}"


def master_port(job_uid: str) -> int:
    """torchrun's rendezvous port: 29500 plus a stable per-job offset in [0, 500).

    On a real cluster every pod has its own network namespace and any fixed port would do. On a node
    whose pods share the host network (hostNetwork pods, or the local process node used in tests and
    the demo) two jobs' rendezvous stores would both bind 29500; a per-job port keeps them apart.
    """
    return MASTER_PORT + zlib.crc32(job_uid.encode()) % MASTER_PORT_SPREAD


def attempt_of(labels: dict[str, str] | None) -> int | None:
    """The attempt number a child carries in its finetune.dev/attempt label, if any."""
    value = (labels or {}).get(LABEL_ATTEMPT)
    if value is None or not value.isdigit():
        return None
    return int(value)


def child_labels(job_name: str, job_uid: str, attempt: int | None = None) -> dict[str, str]:
    """The labels every child carries; `attempt` only on per-attempt children (Job and pods)."""
    labels = {
        LABEL_APP_NAME: APP_NAME,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_NAME: job_name,
        LABEL_JOB_UID: job_uid,
    }
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


def owned_selector(job_uid: str) -> str:
    """Label selector of everything created for one FineTuneJob (by UID, so a recreated job is new)."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_JOB_UID}={job_uid}"
