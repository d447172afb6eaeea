"""Manifest builders: the Indexed Job and headless Service follow the launch contract."""

from __future__ import annotations

import json

import pytest

from finetune_operator import naming
from finetune_operator.job.builders import build_job, build_service, build_spec_config_map
from finetune_operator.job.jobview import InvalidSpecError, JobView
from finetune_operator.settings import Settings

SPEC = {
    "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 3},
    "dataset": {"train": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/out"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
    "resources": {
        "workers": 2,
        "gpusPerWorker": 8,
        "cpu": "16",
        "memory": "200Gi",
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "priorityClassName": "training",
    },
    "runPolicy": {"terminationGracePeriodSeconds": 120},
}


def make_job(spec=None, labels=None, name="reviews", settings: Settings | None = None) -> JobView:
    return JobView.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "uid": "uid-1",
                "generation": 1,
                "labels": labels or {},
            },
            "spec": spec or SPEC,
        },
        default_checkpoint_uri=(settings or Settings()).default_checkpoint_uri,
    )


def container_of(manifest):
    return manifest["spec"]["template"]["spec"]["containers"][0]


def env_of(manifest):
    return {entry["name"]: entry for entry in container_of(manifest)["env"]}


def test_indexed_job_is_one_gang_without_retries():
    manifest = build_job(make_job(), 2, Settings())
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == "reviews-a2"
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed",
        2,
        2,
        0,
    )
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["suspend"] is False


def test_torchrun_command_is_exec_form_with_rank_and_master_address():
    job = make_job()
    command = container_of(build_job(job, 3, Settings()))["command"]
    assert command == [
        "python",
        "-m",
        "finetune_trainer.launch",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        "--master-addr=reviews-a3-0.reviews",
        f"--master-port={naming.master_port(job.uid)}",
        "-m",
        "finetune_trainer",
        "--config=/etc/finetune/spec.json",
    ]


def test_cpu_job_runs_one_process_per_worker_and_requests_no_gpu():
    spec = {**SPEC, "resources": {"workers": 1}}
    manifest = build_job(make_job(spec), 1, Settings())
    assert "--nproc-per-node=1" in container_of(manifest)["command"]
    scratch_only = {"ephemeral-storage": "50Gi"}  # the default scratch size, nothing else
    assert container_of(manifest)["resources"] == {"requests": scratch_only, "limits": scratch_only}


def test_gpu_cpu_memory_requests_equal_limits():
    resources = container_of(build_job(make_job(), 1, Settings()))["resources"]
    assert resources["requests"] == {
        "cpu": "16",
        "memory": "200Gi",
        "nvidia.com/gpu": "8",
        "ephemeral-storage": "50Gi",
    }
    assert resources["limits"] == resources["requests"]


def test_pod_template_has_dns_placement_and_restricted_security():
    pod = build_job(make_job(), 1, Settings())["spec"]["template"]["spec"]
    assert pod["subdomain"] == "reviews"
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 120
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "training"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 1000
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in pod["containers"][0]["ports"]


def spec_file_of(job: JobView, settings: Settings) -> dict:
    return json.loads(build_spec_config_map(job, settings)["data"]["spec.json"])


def test_env_carries_identity_and_secret_keys_only_and_the_spec_is_a_mounted_file():
    manifest = build_job(make_job(), 4, Settings())
    env = env_of(manifest)
    assert "FINETUNE_JOB_SPEC" not in env
    spec = spec_file_of(make_job(), Settings())
    assert spec["resources"]["workers"] == 2 and spec["runPolicy"]["maxRestarts"] == 3
    pod = manifest["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "trainer-spec", "configMap": {"name": "reviews-trainer-spec", "defaultMode": 0o444}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "50Gi"}},
    ]
    assert container_of(manifest)["volumeMounts"] == [
        {"name": "trainer-spec", "mountPath": "/etc/finetune", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
    ]
    assert env["FINETUNE_JOB_NAME"]["value"] == "reviews"
    assert env["FINETUNE_JOB_NAMESPACE"]["value"] == "team-a"
    assert env["FINETUNE_ATTEMPT"]["value"] == "4"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-credentials",
        "key": "AWS_ACCESS_KEY_ID",
        "optional": True,
    }
    assert "envFrom" not in container_of(build_job(make_job(), 1, Settings()))


def test_storage_endpoint_overrides_the_secret_endpoint():
    spec = {**SPEC, "storage": {"secretRef": {"name": "s3"}, "endpoint": "http://127.0.0.1:8333"}}
    env = build_job(make_job(spec), 1, Settings())["spec"]["template"]["spec"]["containers"][0]["env"]
    endpoints = [entry for entry in env if entry["name"] == "AWS_ENDPOINT_URL"]
    assert endpoints == [{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:8333"}]


def test_default_image_and_checkpoint_come_from_settings():
    settings = Settings(default_image="registry.local/trainer:1", default_checkpoint_uri="s3://ckpt")
    manifest = build_job(make_job(settings=settings), 1, settings)
    assert container_of(manifest)["image"] == "registry.local/trainer:1"
    assert (
        spec_file_of(make_job(settings=settings), settings)["checkpoint"]["uri"] == "s3://ckpt/team-a/reviews"
    )


def test_spec_config_map_is_owned_by_the_job_and_immutable():
    config_map = build_spec_config_map(make_job(), Settings())
    assert config_map["metadata"]["name"] == "reviews-trainer-spec"
    assert config_map["metadata"]["namespace"] == "team-a"
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert config_map["immutable"] is True


def test_image_pull_policy_is_always_for_images_other_than_the_default():
    default = container_of(build_job(make_job(), 1, Settings()))
    assert default["image"] == Settings().default_image and "imagePullPolicy" not in default
    other = container_of(build_job(make_job({**SPEC, "image": "registry.example/t:1"}), 1, Settings()))
    assert other["imagePullPolicy"] == "Always"


def test_literal_env_comes_before_the_secret_keys():
    spec = {**SPEC, "storage": {"secretRef": {"name": "s3"}, "endpoint": "http://e:1", "region": "r"}}
    names = [entry for entry in container_of(build_job(make_job(spec), 1, Settings()))["env"]]
    first_secret = next(i for i, entry in enumerate(names) if "secretKeyRef" in entry.get("valueFrom", {}))
    assert all("value" not in entry for entry in names[first_secret:])
    assert [e["name"] for e in names].count("AWS_DEFAULT_REGION") == 1


def test_labels_owner_reference_and_kueue_queue():
    manifest = build_job(make_job(labels={naming.LABEL_KUEUE_QUEUE: "team-a-queue"}), 2, Settings())
    labels = manifest["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "finetune-trainer",
        "app.kubernetes.io/managed-by": "finetune-operator",
        "finetune.dev/job-name": "reviews",
        "finetune.dev/job-uid": "uid-1",
        "finetune.dev/attempt": "2",
        "kueue.x-k8s.io/queue-name": "team-a-queue",
    }
    assert manifest["spec"]["suspend"] is True  # Kueue admits it by unsuspending
    assert "kueue.x-k8s.io/queue-name" not in manifest["spec"]["template"]["metadata"]["labels"]
    owner = manifest["metadata"]["ownerReferences"][0]
    assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
    assert (owner["apiVersion"], owner["kind"], owner["uid"]) == (
        "finetune.dev/v1alpha1",
        "FineTuneJob",
        "uid-1",
    )


def test_pod_failure_policy_marks_invalid_config_and_disruption():
    rules = build_job(make_job(), 1, Settings())["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [78]
    assert rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"


def test_headless_service_selects_every_attempt_and_publishes_unready():
    service = build_service(make_job())
    assert service["metadata"]["name"] == "reviews"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"][naming.LABEL_JOB_UID] == "uid-1"
    assert naming.LABEL_ATTEMPT not in service["spec"]["selector"]


def test_invalid_spec_names_the_field():
    with pytest.raises(InvalidSpecError, match=r"spec\.resources\.workers"):
        make_job({**SPEC, "resources": {"workers": 0}})


def test_master_port_is_stable_per_job_and_differs_between_jobs():
    ports = {naming.master_port(f"uid-{n}") for n in range(50)}
    assert naming.master_port("uid-1") == naming.master_port("uid-1")
    assert len(ports) > 40 and all(29500 <= port < 30000 for port in ports)


def test_single_worker_rendezvouses_over_loopback_without_a_service_name():
    manifest = build_job(make_job({**SPEC, "resources": {"workers": 1}}), 2, Settings())
    pod = manifest["spec"]["template"]["spec"]
    assert "--master-addr=127.0.0.1" in container_of(manifest)["command"]
    assert "subdomain" not in pod  # no headless Service exists for one worker
