"""A namespace enforcing Pod Security "restricted" admits the trainer pods and the operator pod.

The pods are exactly what ships: the trainer pod template from the operator's own `build_job` (the
same function the running operator calls) and the operator pod template from `helm template`. They
are created with a server-side dry run: the API server runs every admission step, PodSecurity
included, but schedules nothing. A pod without any hardening is refused in the same namespace, which
proves the enforcement is live. (test_rbac_operator.py additionally runs a whole job in such a
namespace with the real operator.)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from finetune_operator.job.builders import build_job
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings
from finetune_testkit.finetunejobs import FineTuneJobs
from tests.plugins.helm import Helm, find

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def pod_from_template(template: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template.get("metadata", {}), "name": name},
        "spec": template["spec"],
    }


def dry_run_create(core_v1: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> None:
    core_v1.create_namespaced_pod(namespace, pod, dry_run="All")


@pytest.fixture
def restricted_namespace(extra_namespaces: Callable[..., str]) -> str:
    return extra_namespaces("restricted", labels=RESTRICTED)


def test_an_unhardened_pod_is_refused(core_v1: client.CoreV1Api, restricted_namespace: str) -> None:
    pod = {"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(client.ApiException) as refused:
        dry_run_create(core_v1, restricted_namespace, pod)
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body


@pytest.mark.parametrize("gpus", [0, 1])
def test_trainer_pods_pass_restricted(
    core_v1: client.CoreV1Api, restricted_namespace: str, gpus: int
) -> None:
    manifest = FineTuneJobs.manifest("psa", workers=2, gpus=gpus)
    manifest["metadata"].update(namespace=restricted_namespace, uid=str(uuid.uuid4()))
    job = build_job(JobView.from_body(manifest), attempt=1, settings=Settings())
    template = job["spec"]["template"]
    # Trainers hold no credentials (docs/architecture.md, "Progress is pulled").
    assert template["spec"]["automountServiceAccountToken"] is False
    dry_run_create(core_v1, restricted_namespace, pod_from_template(template, "psa-a1-0"))


def test_operator_pod_passes_restricted(
    helm: Helm, core_v1: client.CoreV1Api, restricted_namespace: str
) -> None:
    (deployment,) = find(
        helm.template(namespace=restricted_namespace, values={"serviceAccount.create": False}), "Deployment"
    )
    template = deployment["spec"]["template"]
    dry_run_create(core_v1, restricted_namespace, pod_from_template(template, "operator"))
