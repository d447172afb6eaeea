"""Shared-cluster hardening on the real API server and the real operator (issue 13, items 1-4, 6, 10, 12).

- the chart's optional ValidatingAdmissionPolicies refuse, at apply, a FineTuneJob with a disallowed
  image, and a Job created by the operator's ServiceAccount that is not shaped like a trainer gang;
- the CRD refuses a 60-character FineTuneJob name with a message naming the limit;
- the operator ends a job `Failed` with `ImageNotAllowed`, and with `ChildRejected` (the API's own
  message) when the API server refuses to create the attempt's Job;
- the largest valid spec reaches the workers as a file from the job's ConfigMap.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from finetune_api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from finetune_operator import naming
from finetune_operator.job.builders import build_job
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings
from localcluster.waiting import wait_until
from tests.plugins.helm import Helm, find

pytestmark = pytest.mark.cluster

SPEC = {
    "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/out"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}


def ftj(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def dry_run(api_client: client.ApiClient, namespace: str, body: dict[str, Any]) -> str | None:
    """Server-side dry-run create of a FineTuneJob: the refusal message, or None when accepted."""
    try:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, dry_run="All"
        )
    except client.ApiException as error:
        return json.loads(error.body)["message"]
    return None


@pytest.fixture
def apply_policies(kubectl: Callable[..., Any]) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Apply cluster-scoped admission objects under unique names; delete them afterwards."""
    applied: list[tuple[str, str]] = []

    def apply(objects: list[dict[str, Any]]) -> None:
        suffix = uuid.uuid4().hex[:6]
        for obj in copy.deepcopy(objects):
            obj["metadata"]["name"] += f"-{suffix}"
            if obj["kind"] == "ValidatingAdmissionPolicyBinding":
                obj["spec"]["policyName"] += f"-{suffix}"
            kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))
            applied.append((obj["kind"], obj["metadata"]["name"]))

    yield apply
    for kind, name in reversed(applied):
        kubectl("delete", kind, name, "--ignore-not-found", check=False)


def test_a_60_character_name_is_refused_at_apply_naming_the_limit(
    api_client: client.ApiClient, namespace: str, crds_installed: list[str]
) -> None:
    message = dry_run(api_client, namespace, ftj("a" * 60, SPEC))
    assert message is not None and "at most 49 characters" in message, message
    assert dry_run(api_client, namespace, ftj("a" * 49, SPEC)) is None
    message = dry_run(api_client, namespace, ftj("team.reviews", SPEC))
    assert message is not None and "DNS label" in message, message


def test_dollar_paren_in_the_endpoint_is_refused_at_apply(
    api_client: client.ApiClient, namespace: str, crds_installed: list[str]
) -> None:
    spec = {**SPEC, "storage": {**SPEC["storage"], "endpoint": "https://x.example/$(AWS_SECRET_ACCESS_KEY)"}}
    message = dry_run(api_client, namespace, ftj("leak", spec))
    assert message is not None and "spec.storage.endpoint" in message and "$(" in message, message


def test_the_image_admission_policy_refuses_disallowed_images_at_apply(
    helm: Helm, api_client: client.ApiClient, namespace: str, crds_installed: list[str], apply_policies
) -> None:
    values = {
        "policy.admission.images": True,
        "operator.watchNamespaces": [namespace],
        "policy.allowedImages": ["registry.example/*/trainer:*"],
    }
    objects = helm.template(values)
    apply_policies(
        find(objects, "ValidatingAdmissionPolicy") + find(objects, "ValidatingAdmissionPolicyBinding")
    )
    evil = ftj("evil", {**SPEC, "image": "docker.io/evil/miner:1"})
    message = wait_until(lambda: dry_run(api_client, namespace, evil), 30, "the image policy takes effect")
    assert "docker.io/evil/miner:1" in message and "registry.example/*/trainer:*" in message, message
    assert (
        dry_run(api_client, namespace, ftj("ok", {**SPEC, "image": "registry.example/a/trainer:1"})) is None
    )
    assert dry_run(api_client, namespace, ftj("default", SPEC)) is None  # the default image


def trainer_job_manifest(namespace: str) -> dict[str, Any]:
    """A Job exactly as the operator builds it (what the policy must let through)."""
    view = JobView.from_body(
        {"metadata": {"name": "gang", "namespace": namespace, "uid": "u-1", "generation": 1}, "spec": SPEC}
    )
    return build_job(view, 1, Settings())


def test_the_operator_service_account_may_create_only_trainer_shaped_jobs(
    helm: Helm,
    kubectl: Callable[..., Any],
    core_v1: client.CoreV1Api,
    namespace: str,
    crds_installed: list[str],
    apply_policies,
) -> None:
    service_account = f"op-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": service_account}})
    user = f"system:serviceaccount:{namespace}:{service_account}"
    kubectl("create", "role", "jobs", "-n", namespace, "--verb=create", "--resource=jobs.batch")
    kubectl(
        "create",
        "rolebinding",
        "jobs",
        "-n",
        namespace,
        "--role=jobs",
        f"--serviceaccount={namespace}:{service_account}",
    )
    objects = helm.template(
        {"policy.admission.trainerJobs": True, "serviceAccount.name": service_account}, namespace=namespace
    )
    apply_policies(
        find(objects, "ValidatingAdmissionPolicy") + find(objects, "ValidatingAdmissionPolicyBinding")
    )

    def create_as(manifest: dict[str, Any], as_user: str | None = user) -> str | None:
        args = ["create", "-f", "-", "--dry-run=server", "-o", "name"]
        if as_user:
            args.append(f"--as={as_user}")
        result = kubectl(*args, input=json.dumps(manifest), check=False)
        return None if result.returncode == 0 else result.stderr

    good = trainer_job_manifest(namespace)
    host_path = copy.deepcopy(good)
    host_path["spec"]["template"]["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    refused = wait_until(lambda: create_as(host_path), 30, "the trainer-jobs policy takes effect")
    assert "hostPath" in refused, refused
    assert create_as(good) is None
    other_account = copy.deepcopy(good)
    other_account["spec"]["template"]["spec"]["serviceAccountName"] = "admin"
    assert "service account" in (create_as(other_account) or "")
    unlabelled = copy.deepcopy(good)
    del unlabelled["metadata"]["labels"][naming.LABEL_MANAGED_BY]
    assert "labels" in (create_as(unlabelled) or "")
    privileged = copy.deepcopy(good)
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert "privileged" in (create_as(privileged) or "")
    assert create_as(host_path, as_user=None) is None  # only the operator's account is constrained


def test_a_disallowed_image_ends_the_job_failed_image_not_allowed(operator, finetunejobs) -> None:
    manifest = finetunejobs.manifest("evil-image", workers=1)
    manifest["spec"]["image"] = "docker.io/evil/miner:1"
    finetunejobs.create(manifest)
    status = finetunejobs.wait_condition("evil-image", "Failed", reason="ImageNotAllowed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert "docker.io/evil/miner:1" in failed["message"] and "--allowed-images" in failed["message"]
    assert finetunejobs.jobs("evil-image") == []


def test_a_job_the_api_refuses_ends_failed_with_the_apis_message(
    operator, finetunejobs, namespace: str, apply_policies
) -> None:
    """A 4xx creating a child (here: an admission policy of the cluster) is final, not retried forever."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "t-one-worker"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["batch"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["jobs"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.spec.parallelism <= 1",
                    "message": "this namespace runs one worker per job",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "t-one-worker"},
        "spec": {
            "policyName": "t-one-worker",
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
                    ]
                }
            },
        },
    }
    apply_policies([policy, binding])
    batch = client.BatchV1Api(finetunejobs.batch.api_client)
    probe = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe"},
        "spec": {
            "parallelism": 2,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        },
    }

    def refused() -> bool:
        try:
            batch.create_namespaced_job(namespace, probe, dry_run="All")
        except client.ApiException as error:
            return error.status == 422 or error.status == 403
        return False

    wait_until(refused, 30, "the test policy takes effect")
    finetunejobs.create(finetunejobs.manifest("two-workers", workers=2))
    status = finetunejobs.wait_condition("two-workers", "Failed", reason="ChildRejected")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert "this namespace runs one worker per job" in failed["message"], failed
    assert "two-workers-a1" in failed["message"]


def largest_valid_spec() -> dict[str, Any]:
    """Every list at its cap and long strings: far beyond the kernel's 128 KiB per-argument limit."""
    classes = 10000
    return {
        **SPEC,
        "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": classes},
        "training": {
            "classWeights": "explicit",
            "classWeightValues": [123456.78901234567 + i for i in range(classes)],
        },
        "resources": {
            "workers": 1,
            "gpusPerWorker": 1,
            "nodeSelector": {f"example.com/label-{i:02d}-{'k' * 40}": "v" * 63 for i in range(64)},
        },
    }


def test_the_largest_valid_spec_reaches_the_workers_as_a_file(
    operator, finetunejobs, core_v1: client.CoreV1Api, namespace: str
) -> None:
    spec = largest_valid_spec()
    assert len(json.dumps(spec)) > 200_000
    manifest = finetunejobs.manifest("big")
    manifest["spec"] = {**spec, "image": "finetune-trainer:test", "runPolicy": manifest["spec"]["runPolicy"]}
    manifest["spec"]["resources"]["nodeSelector"] = {}  # KWOK's GPU nodes must be able to take it
    manifest["spec"]["training"]["classWeightValues"] = spec["training"]["classWeightValues"]
    finetunejobs.create(manifest)

    def config_map() -> client.V1ConfigMap | None:
        try:
            return core_v1.read_namespaced_config_map("big-trainer-spec", namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    found = wait_until(config_map, 120, "the spec ConfigMap")
    sent = json.loads(found.data["spec.json"])
    assert sent["training"]["classWeightValues"] == spec["training"]["classWeightValues"]
    assert found.metadata.owner_references[0].kind == "FineTuneJob"
    job = wait_until(lambda: (finetunejobs.jobs("big") or [None])[0], 120, "attempt 1's Job")
    pod_spec = job.spec.template.spec
    assert pod_spec.volumes[0].config_map.name == "big-trainer-spec"
    env = {entry.name for entry in pod_spec.containers[0].env}
    assert "FINETUNE_JOB_SPEC" not in env
    finetunejobs.wait_pods_running("big", 1, 1)
