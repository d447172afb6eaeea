"""Everything examples/quickstart.yaml needs on the local cluster, shared by `make demo` and e2e tests.

Why one module: the demo shows a newcomer the same loop the e2e tests prove (seeded model and data,
a credentials Secret, the quickstart job on the process node, a preemption, the resume), so they
must not drift apart. Nothing here waits with sleeps: callers poll the API with deadlines.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from finetune_api.constants import GROUP, PLURAL, VERSION
from localcluster import health
from localcluster.config import S3_ACCESS_KEY, S3_SECRET_KEY, ClusterConfig
from localcluster.seed import seed_quickstart

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "examples" / "quickstart.yaml"
CREDENTIALS_SECRET = "s3-credentials"


def quickstart_manifest(
    s3_endpoint: str, bucket: str, name: str = "quickstart", path: Path = QUICKSTART
) -> dict[str, Any]:
    """examples/quickstart.yaml, pointed at this cluster's S3 endpoint, bucket and a job name."""
    manifest = yaml.safe_load(path.read_text())
    manifest = json.loads(json.dumps(manifest).replace("s3://finetune/", f"s3://{bucket}/"))
    manifest["metadata"]["name"] = name
    spec = manifest["spec"]
    spec["storage"]["endpoint"] = s3_endpoint
    spec["checkpoint"]["uri"] = f"s3://{bucket}/checkpoints/{name}"
    spec["output"]["uri"] = f"s3://{bucket}/outputs/{name}"
    return manifest


def with_spec(manifest: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """A copy of `manifest` whose spec sections are updated key by key (for test variations)."""
    changed = copy.deepcopy(manifest)
    for section, values in sections.items():
        changed["spec"].setdefault(section, {}).update(values)
    return changed


def ensure_credentials(core: client.CoreV1Api, namespace: str, s3_endpoint: str) -> None:
    """The Secret spec.storage.secretRef names: the local S3 keys (and endpoint)."""
    body = {
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": namespace},
        "stringData": {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_ENDPOINT_URL": s3_endpoint,
        },
    }
    try:
        core.create_namespaced_secret(namespace, body)
    except client.ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_secret(CREDENTIALS_SECRET, namespace, body)


def ensure_namespace(core: client.CoreV1Api, namespace: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except client.ApiException as error:
        if error.status != 409:
            raise


def seed_and_clear(fs: Any, bucket: str, name: str) -> dict[str, str]:
    """Upload MiniLM and the dataset; remove earlier checkpoints/outputs of a job with this name."""
    for prefix in (f"{bucket}/checkpoints/{name}", f"{bucket}/outputs/{name}"):
        if fs.exists(prefix):
            fs.rm(prefix, recursive=True)
    return seed_quickstart(fs, bucket)


def create_job(custom: client.CustomObjectsApi, namespace: str, manifest: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)


def get_job(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def worker_pods(core: client.CoreV1Api, namespace: str, name: str, attempt: int) -> list[client.V1Pod]:
    """The worker pods of one attempt of FineTuneJob `name`, ordered by completion index."""
    selector = f"finetune.dev/job-name={name},finetune.dev/attempt={attempt}"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return sorted(
        pods, key=lambda pod: int(pod.metadata.annotations.get("batch.kubernetes.io/job-completion-index", 0))
    )


def pod_log_lines(
    config: ClusterConfig, pod: client.V1Pod, container: str = "trainer"
) -> Iterator[dict[str, Any]]:
    """The JSON log lines of a pod's container, read like `kubectl logs` does (other lines skipped).

    Through the API server and the process node's kubelet log endpoint, so this works for a pod
    on any node that serves logs; a pod whose log cannot be read (gone, not started) yields nothing.
    """
    with health.api_client(config) as api:
        try:
            text = client.CoreV1Api(api).read_namespaced_pod_log(
                pod.metadata.name, pod.metadata.namespace, container=container
            )
        except client.ApiException:
            return
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def first_training_step(records: Iterator[dict[str, Any]]) -> int | None:
    """The first optimizer step a trainer logged a training loss at ("train log" lines)."""
    for record in records:
        step = record.get("step")
        if record.get("msg") == "train log" and isinstance(step, int):
            return step
    return None


def resumed_from(records: Iterator[dict[str, Any]]) -> int | None:
    """The checkpoint step a trainer logged that it resumed from, if it did."""
    for record in records:
        if record.get("msg") == "resuming":
            step = record.get("checkpoint_step")
            if isinstance(step, int):
                return step
    return None
