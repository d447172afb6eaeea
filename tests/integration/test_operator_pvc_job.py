"""pvc:// URIs on the real local cluster (issue 13, item 14): a FineTuneJob whose model, dataset and
output live on PersistentVolumeClaims trains for real on the process node and leaves its model in
the claim's directory.

Each claim is bound to a hostPath PersistentVolume under the test's tmp dir, by the real PV
controller. The operator mounts every claim a URI names at /mnt/pvc/<claim> (the model's claim
read-only, the output's read-write) and the process node resolves claim -> bound PV -> directory as
a kubelet does, so the trainer's writes land in the PV's directory, not on the host's /mnt/pvc.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from finetune_api import GROUP, VERSION
from finetune_testkit.trainer_helpers import sentiment_records, write_jsonl, write_tiny_bert
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster

TRAIN_TIMEOUT = 600.0  # a tiny BERT for a few steps, on 2 CPUs shared with other sessions
PROCESS_NODE = "finetune.dev/process-node"


class Claims:
    """hostPath PersistentVolumes pre-bound to claims of the test namespace; PVs deleted afterwards."""

    def __init__(self, core: client.CoreV1Api, namespace: str, root: Path):
        self.core, self.namespace, self.root = core, namespace, root
        self.volumes: list[str] = []

    def make(self, claim: str) -> Path:
        directory = self.root / claim
        directory.mkdir(parents=True)
        pv = f"{self.namespace}-{claim}"
        self.core.create_persistent_volume(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(directory), "type": "Directory"},
                    "claimRef": {"namespace": self.namespace, "name": claim},
                },
            }
        )
        self.volumes.append(pv)
        self.core.create_namespaced_persistent_volume_claim(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        wait_until(
            lambda: (
                self.core.read_namespaced_persistent_volume_claim(claim, self.namespace).status.phase
                == "Bound"
            ),
            60,
            f"claim {claim} bound to {pv}",
        )
        return directory

    def delete(self) -> None:
        for pv in self.volumes:
            try:
                self.core.delete_persistent_volume(pv)
            except ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture
def claims(core_v1: client.CoreV1Api, namespace: str, tmp_path: Path) -> Iterator[Claims]:
    made = Claims(core_v1, namespace, tmp_path / "volumes")
    yield made
    made.delete()


def job_manifest(name: str, models: str, work: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "uri": f"pvc://{models}/tiny-bert",
                "task": "sequence-classification",
                "numLabels": 2,
                "labels": ["neg", "pos"],
            },
            "dataset": {
                "train": f"pvc://{work}/data/train.jsonl",
                "validation": f"pvc://{work}/data/validation.jsonl",
                "maxLength": 16,
            },
            "training": {
                "maxSteps": 6,
                "batchSizePerDevice": 8,
                "learningRate": 5e-3,
                "loggingSteps": 2,
                "evaluation": {"strategy": "steps", "everySteps": 6, "metric": "loss"},
            },
            "resources": {
                "workers": 1,
                "ephemeralStorage": "2Gi",
                "nodeSelector": {PROCESS_NODE: "true"},
                "tolerations": [
                    {"key": PROCESS_NODE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
                ],
            },
            "checkpoint": {"everySteps": 3, "keep": 1},
            "output": {"uri": f"pvc://{work}/out/{name}"},
            "runPolicy": {"maxRestarts": 0, "terminationGracePeriodSeconds": 5},
        },
    }


def test_a_job_reads_and_writes_persistent_volume_claims(operator, finetunejobs, core_v1, claims):
    suffix = uuid.uuid4().hex[:6]
    models_claim, work_claim = f"models-{suffix}", f"work-{suffix}"
    models, work = claims.make(models_claim), claims.make(work_claim)
    write_tiny_bert(models / "tiny-bert")
    write_jsonl(work / "data" / "train.jsonl", sentiment_records(48, seed=5))
    write_jsonl(work / "data" / "validation.jsonl", sentiment_records(16, seed=6))

    finetunejobs.create(job_manifest("on-claims", models_claim, work_claim))
    pod = wait_until(
        lambda: next(iter(finetunejobs.pods("on-claims")), None), 120, "the worker pod of on-claims"
    )
    mounts = {m.name: m for m in pod.spec.containers[0].volume_mounts}
    by_claim = {
        v.persistent_volume_claim.claim_name: v for v in pod.spec.volumes if v.persistent_volume_claim
    }
    assert by_claim[models_claim].persistent_volume_claim.read_only is True
    assert not by_claim[work_claim].persistent_volume_claim.read_only  # false is omitted
    assert mounts[by_claim[models_claim].name].mount_path == f"/mnt/pvc/{models_claim}"
    assert mounts[by_claim[work_claim].name].mount_path == f"/mnt/pvc/{work_claim}"

    def ended() -> dict[str, Any] | None:
        status = finetunejobs.get("on-claims").get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_until(ended, TRAIN_TIMEOUT, "FineTuneJob on-claims to end")
    assert status["phase"] == "Succeeded", status.get("conditions")

    output = work / "out" / "on-claims"
    written = {path.name for path in output.iterdir()}
    assert {"config.json", "tokenizer_config.json"} <= written, written
    assert written & {"model.safetensors", "pytorch_model.bin"}, written
    checkpoints = output / "checkpoints"
    assert list(checkpoints.glob("checkpoint-*/manifest.json")), "no committed checkpoint on the claim"
    # Nothing went to the read-only claim, nor to the host's mount points (the mounts were real).
    assert sorted(p.name for p in models.iterdir()) == ["tiny-bert"]
    for claim in (models_claim, work_claim):
        host_mount_point = Path("/mnt/pvc") / claim
        assert not host_mount_point.exists() or not any(host_mount_point.iterdir())
