"""Scratch space and pvc:// claims (issue 13, items 13 and 14): what the builders put into the pod,
how the failure policy judges a storage-limit eviction, and the API's refusals.

Pod dicts are shaped as the kubelet writes them on an eviction (pkg/kubelet/eviction): status.reason
"Evicted", the eviction message in status.message, the container killed (137).
"""

from __future__ import annotations

import pytest

from finetune_api import SpecError, parse_spec
from finetune_api.contract import SCRATCH_DIR
from finetune_operator.job.builders import build_job
from finetune_operator.job.failure_policy import Verdict, classify_attempt, storage_limit_eviction
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings
from finetune_trainer import storage
from tests.plugins.operator_objects import job_obj, pod_obj, true

BASE = {
    "model": {"uri": "s3://models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/out"},
    "storage": {"secretRef": {"name": "s3-credentials"}},
}


def job_of(spec: dict, settings: Settings | None = None) -> JobView:
    return JobView.from_body(
        {"metadata": {"name": "reviews", "namespace": "team-a", "uid": "uid-1"}, "spec": spec},
        default_checkpoint_uri=(settings or Settings()).default_checkpoint_uri,
    )


def pod_spec(spec: dict, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    return build_job(job_of(spec, settings), 1, settings)["spec"]["template"]["spec"]


def env_list(pod: dict) -> list[dict]:
    return pod["containers"][0]["env"]


def env_values(pod: dict) -> dict[str, str]:
    return {entry["name"]: entry.get("value") for entry in env_list(pod)}


# --- scratch space -------------------------------------------------------------------------------


def test_scratch_is_an_emptydir_sized_from_the_spec_and_the_containers_storage_limit():
    pod = pod_spec({**BASE, "resources": {"ephemeralStorage": "120Gi", "cpu": "4"}})
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "120Gi"}} in pod["volumes"]
    assert {"name": "scratch", "mountPath": SCRATCH_DIR} in pod["containers"][0]["volumeMounts"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "4", "ephemeral-storage": "120Gi"}


def test_work_dir_model_cache_and_temp_files_point_into_the_scratch_volume():
    pod = pod_spec(BASE)
    env = env_values(pod)
    for name in ("FINETUNE_WORK_DIR", "HF_HOME", "TMPDIR"):
        assert env[name] == SCRATCH_DIR or env[name].startswith(f"{SCRATCH_DIR}/"), name
    # Literal env comes before the Secret's keys (the $(VAR) rule of the builders).
    names = [entry["name"] for entry in env_list(pod)]
    first_secret = next(i for i, e in enumerate(env_list(pod)) if "secretKeyRef" in e.get("valueFrom", {}))
    assert max(names.index(n) for n in ("FINETUNE_WORK_DIR", "HF_HOME", "TMPDIR")) < first_secret


@pytest.mark.parametrize("size", ["0", "-1Gi", "0.0Gi", "abc"])
def test_a_scratch_size_that_is_not_a_positive_quantity_is_refused_naming_the_field(size):
    with pytest.raises(SpecError, match=r"spec\.resources\.ephemeralStorage"):
        parse_spec({**BASE, "resources": {"ephemeralStorage": size}})


# --- pvc:// claims ---------------------------------------------------------------------------------


def test_every_claim_a_uri_names_is_mounted_read_only_unless_written():
    spec = {
        **BASE,
        "model": {**BASE["model"], "uri": "pvc://models/minilm"},
        "dataset": {"train": "pvc://data/train.jsonl", "validation": "pvc://data/val.jsonl"},
        "output": {"uri": "pvc://results/reviews"},
    }
    pod = pod_spec(spec)
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert {name: v["persistentVolumeClaim"]["readOnly"] for name, v in claims.items()} == {
        "data": True,
        "models": True,
        "results": False,  # output and (by default) checkpoints are written there
    }
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    for claim, volume in claims.items():
        mount = mounts[volume["name"]]
        assert mount["mountPath"] == f"/mnt/pvc/{claim}"
        assert mount["readOnly"] is volume["persistentVolumeClaim"]["readOnly"]
    assert env_values(pod)["FINETUNE_PVC_ROOT"] == "/mnt/pvc"


def test_a_claim_that_is_read_and_written_is_mounted_read_write_once():
    spec = {**BASE, "dataset": {"train": "pvc://work/data/train.jsonl"}, "output": {"uri": "pvc://work/out"}}
    pod = pod_spec(spec)
    volumes = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volumes == [{"name": "pvc-0", "persistentVolumeClaim": {"claimName": "work", "readOnly": False}}]


def test_the_operators_default_checkpoint_root_on_a_claim_is_mounted_read_write():
    settings = Settings(default_checkpoint_uri="pvc://checkpoints/root")
    pod = pod_spec(BASE, settings)
    volumes = [v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volumes == [{"claimName": "checkpoints", "readOnly": False}]


def test_a_job_without_pvc_uris_mounts_no_claim():
    pod = pod_spec(BASE)
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]


def test_the_trainer_resolves_pvc_uris_inside_the_mounts_the_operator_makes(monkeypatch):
    spec = {**BASE, "dataset": {"train": "pvc://data/sets/train.jsonl"}, "output": {"uri": "pvc://out/m"}}
    pod = pod_spec(spec)
    monkeypatch.setenv("FINETUNE_PVC_ROOT", env_values(pod)["FINETUNE_PVC_ROOT"])
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"].startswith("pvc-")]
    for uri in ("pvc://data/sets/train.jsonl", "pvc://out/m"):
        path = storage.local_path_of(uri)
        assert any(path.startswith(f"{mount}/") for mount in mounts), (uri, path, mounts)


@pytest.mark.parametrize(
    "uri", ["pvc://Data/train.jsonl", "pvc:///train.jsonl", "pvc://data/../etc/passwd", "pvc://a_b/x"]
)
def test_a_pvc_uri_without_a_valid_claim_or_with_a_parent_segment_is_refused(uri):
    with pytest.raises(SpecError, match=r"spec\.dataset\.train: a pvc:// URI must be pvc://<claim>/<path>"):
        parse_spec({**BASE, "dataset": {"train": uri}})


# --- storage-limit evictions are failures ----------------------------------------------------------


def evicted(index: int, message: str, conditions: list | None = None) -> dict:
    """A worker pod as the kubelet leaves it after an eviction."""
    pod = pod_obj(1, index, "Failed", exit_code=137, reason="Evicted", conditions=conditions)
    pod["status"]["message"] = message
    return pod


EMPTY_DIR = 'Usage of EmptyDir volume "scratch" exceeds the limit "50Gi". '
CONTAINER = 'Container trainer exceeded its local ephemeral storage limit "50Gi". '
POD_TOTAL = "Pod ephemeral local storage usage exceeds the total limit of containers 50Gi. "


@pytest.mark.parametrize("message", [EMPTY_DIR, CONTAINER, POD_TOTAL])
def test_an_eviction_for_the_pods_own_storage_limit_is_a_counted_failure(message):
    pods = [pod_obj(1, 0, "Running"), evicted(1, message)]
    # backoffLimit 0: the Job controller fails the Job; no podFailurePolicy rule matched.
    job = job_obj(1, [true("Failed", reason="BackoffLimitExceeded", message="Job has reached the limit")])
    outcome = classify_attempt(job, pods, workers=2)
    assert outcome.verdict is Verdict.RETRYABLE
    assert outcome.reason == "EphemeralStorageExceeded" and outcome.worker == 1
    assert message.strip() in outcome.message and "spec.resources.ephemeralStorage" in outcome.message


def test_a_storage_limit_eviction_with_the_kubelets_pending_termination_condition_is_still_a_failure():
    condition = true("PendingTermination", reason="EvictionByKubelet", message=EMPTY_DIR)
    pod = evicted(0, EMPTY_DIR, [condition])
    assert storage_limit_eviction(pod) == EMPTY_DIR.strip()
    assert classify_attempt(job_obj(1), [pod], workers=1).verdict is Verdict.RETRYABLE


def test_node_pressure_eviction_and_preemption_stay_free_disruptions():
    pressure = "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 1Gi. "
    target = true("DisruptionTarget", reason="TerminationByKubelet", message=pressure)
    pod = evicted(0, pressure, [target])
    assert storage_limit_eviction(pod) is None
    assert classify_attempt(job_obj(1), [pod], workers=1).verdict is Verdict.DISRUPTED
    preempted = pod_obj(1, 0, "Failed", exit_code=143, conditions=[true("DisruptionTarget")])
    assert classify_attempt(job_obj(1), [preempted], workers=1).verdict is Verdict.DISRUPTED


def test_a_message_naming_storage_without_an_eviction_is_an_ordinary_failure():
    pod = pod_obj(1, 0, "Failed", exit_code=1, message="OSError: No space left on device")
    assert storage_limit_eviction(pod) is None
    assert classify_attempt(job_obj(1), [pod], workers=1).reason == "WorkerFailed"
