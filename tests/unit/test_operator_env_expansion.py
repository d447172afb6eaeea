"""No user string can reach the kubelet's `$(VAR)` expansion and read a Secret key (issue 13, item 1).

Every string field of a full spec (all optional strings set, every free-form map filled) gets the
payload `$(AWS_SECRET_ACCESS_KEY)`; the built Job's env and command are then resolved in order,
exactly as the kubelet does (the process node's expansion code), with the storage Secret's keys
present. The Secret's value must not appear in any resolved env value or argument.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finetune_api import FineTuneJobSpec
from finetune_operator.job.builders import build_job
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings
from localcluster.processnode.expansion import expand, expand_all, mapping_for

SECRET_VALUE = "s3cr3t-value-never-to-leak"
PAYLOAD = "$(AWS_SECRET_ACCESS_KEY)"

FULL_SPEC: dict[str, Any] = {
    "model": {
        "uri": "hf://org/model",
        "task": "sequence-classification",
        "numLabels": 2,
        "labels": ["neg", "pos"],
        "revision": "main",
        "lora": {"targetModules": ["query"]},
    },
    "dataset": {
        "train": "s3://data/train.jsonl",
        "validation": "s3://data/validation.jsonl",
        "test": "s3://data/test.jsonl",
        "textPairField": "pair",
    },
    "training": {"distribution": {"strategy": "auto", "autoWrapLayers": ["BertLayer"]}},
    "resources": {
        "gpusPerWorker": 1,
        "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"note": "free-form"}},
        "priorityClassName": "training",
        "cpu": "1",
        "memory": "1Gi",
    },
    "checkpoint": {"uri": "s3://data/ckpt"},
    "output": {"uri": "s3://models/out"},
    "storage": {"secretRef": {"name": "s3"}, "endpoint": "http://127.0.0.1:9000", "region": "eu-1"},
    "image": "registry.example/trainer:1",
}

# Quantized base weights exclude the FSDP knobs above, so they get a spec of their own.
QUANTIZED_SPEC: dict[str, Any] = {
    **FULL_SPEC,
    "model": {**FULL_SPEC["model"], "quantization": {"bits": 4}},
    "training": {"distribution": {"strategy": "auto"}},
}
FULL_SPECS = (FULL_SPEC, QUANTIZED_SPEC)


def poison(node: Any, path: str = "") -> tuple[Any, set[str]]:
    """`node` with PAYLOAD appended to every string (values and map keys); the paths touched."""
    if isinstance(node, str):
        return node + PAYLOAD, {path}
    if isinstance(node, list):
        touched: set[str] = set()
        items = []
        for item in node:
            new, paths = poison(item, path)
            items.append(new)
            touched |= paths
        return items, touched
    if isinstance(node, dict):
        touched = set()
        result = {}
        for key, value in node.items():
            new, paths = poison(value, f"{path}.{key}" if path else key)
            result[key + PAYLOAD if path.endswith(("nodeSelector", "affinity")) else key] = new
            touched |= paths
        return result, touched
    return node, set()


def string_fields(schema: dict[str, Any], defs: dict[str, Any], path: str = "") -> set[str]:
    """Dotted paths of every string-typed field of the spec's JSON schema."""
    if "$ref" in schema:
        return string_fields(defs[schema["$ref"].split("/")[-1]], defs, path)
    found: set[str] = set()
    for option in schema.get("anyOf", []) + schema.get("allOf", []):
        found |= string_fields(option, defs, path)
    if schema.get("type") == "string" or all(isinstance(v, str) for v in schema.get("enum", [0])):
        found.add(path)
    if schema.get("type") == "array" and "items" in schema:
        found |= string_fields(schema["items"], defs, path)
    for name, sub in (schema.get("properties") or {}).items():
        found |= string_fields(sub, defs, f"{path}.{name}" if path else name)
    return found


def resolve(container: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The container's env and command after the kubelet's expansion, the Secret's keys present."""
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = expand(entry["value"], mapping_for(env))
        elif "secretKeyRef" in entry["valueFrom"]:
            env[entry["name"]] = SECRET_VALUE
        else:
            env[entry["name"]] = "0"
    return env, expand_all(container["command"], env)


def test_the_full_specs_cover_every_string_field_of_the_api():
    schema = FineTuneJobSpec.model_json_schema(by_alias=True)
    touched: set[str] = set()
    for spec in FULL_SPECS:
        touched |= poison(JobView.from_body(body(spec)).spec)[1]
    missing = string_fields(schema, schema.get("$defs", {})) - touched
    assert not missing, f"add these string fields to FULL_SPEC: {sorted(missing)}"


def body(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "leak", "namespace": "team-a", "uid": "uid-1", "generation": 1},
        "spec": copy.deepcopy(spec),
    }


@pytest.mark.parametrize("spec", FULL_SPECS, ids=("fsdp-knobs", "quantized"))
def test_no_user_string_expands_to_a_secret_key(spec: dict[str, Any]):
    parsed = JobView.from_body(body(spec))
    poisoned_spec, touched = poison(parsed.spec)
    assert {"storage.endpoint", "storage.region", "image", "output.uri"} <= touched
    job = JobView(**{**parsed.__dict__, "spec": poisoned_spec})
    container = build_job(job, 1, Settings())["spec"]["template"]["spec"]["containers"][0]
    env, command = resolve(container)
    literals = [entry["name"] for entry in container["env"] if "value" in entry]
    leaked = [name for name in literals if SECRET_VALUE in env[name]]
    assert not leaked, leaked
    assert not [arg for arg in command if SECRET_VALUE in arg]
    # The payload arrives literally where a user string does reach env.
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" + PAYLOAD
    assert env["AWS_DEFAULT_REGION"] == "eu-1" + PAYLOAD
