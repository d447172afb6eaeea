"""A container's environment from its pod spec: env, envFrom, and the values they reference.

Why pure: the rules (order, ``$(VAR)`` expansion against earlier values, optional references,
prefixes, downward-API field paths) are where a local runner most easily drifts from a kubelet,
so they live here without I/O and are tested table-driven. Reading Secrets and ConfigMaps is
injected as ``lookup(kind, name) -> object dict | None``.

A missing non-optional reference raises :class:`EnvConfigError`; the pod worker reports it the
way a kubelet does (container waiting with reason ``CreateContainerConfigError``) and retries.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localcluster.processnode.expansion import expand, mapping_for
from localcluster.processnode.quantity import QuantityError, resource_field_value

Lookup = Callable[[str, str], dict[str, Any] | None]

_SUBSCRIPTED = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


class EnvConfigError(Exception):
    """A reference in env or envFrom cannot be resolved (yet)."""


@dataclass(frozen=True)
class PodFacts:
    """What the downward API can expose besides the pod object itself."""

    pod_ip: str
    host_ip: str
    node_name: str
    # What an unset limit reads as through resourceFieldRef (the kubelet uses node allocatable).
    allocatable: Mapping[str, str] = dataclasses.field(default_factory=lambda: host_allocatable())


def host_allocatable() -> dict[str, str]:
    """This machine's CPUs and memory: what the process node reports as allocatable by default."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory)}


def object_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The string values of a Secret (base64-decoded) or a ConfigMap (data and binaryData)."""
    if kind == "Secret":
        return {key: base64.b64decode(value).decode() for key, value in (obj.get("data") or {}).items()}
    values = dict(obj.get("data") or {})
    for key, value in (obj.get("binaryData") or {}).items():
        values[key] = base64.b64decode(value).decode()
    return values


def field_value(pod: Mapping[str, Any], facts: PodFacts, field_path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath`` for this pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    match = _SUBSCRIPTED.match(field_path)
    if match:
        section = "labels" if match.group(1).endswith("labels") else "annotations"
        return (meta.get(section) or {}).get(match.group(2), "")
    simple: dict[str, str] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or facts.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if field_path not in simple:
        raise EnvConfigError(
            f"fieldRef.fieldPath {field_path!r} is not supported by the process node; "
            f"use one of {sorted(simple)} or metadata.labels['k'] / metadata.annotations['k']"
        )
    return simple[field_path]


def resource_value(
    container: Mapping[str, Any], pod: Mapping[str, Any], facts: PodFacts, ref: Mapping[str, Any]
) -> str:
    """The value of a downward-API ``resourceFieldRef`` (limits/requests of cpu/memory)."""
    name = ref.get("containerName") or container.get("name")
    target = next(
        (c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == name), container
    )
    try:
        return resource_field_value(
            dict(target.get("resources") or {}),
            ref.get("resource", ""),
            ref.get("divisor"),
            dict(facts.allocatable),
        )
    except QuantityError as exc:
        raise EnvConfigError(f"resourceFieldRef: {exc}") from exc


def _referenced_value(kind: str, ref: Mapping[str, Any], lookup: Lookup, namespace: str) -> str | None:
    name = ref.get("name", "")
    key = ref.get("key", "")
    optional = bool(ref.get("optional"))
    obj = lookup(kind, name)
    if obj is None:
        if optional:
            return None
        raise EnvConfigError(f'{kind.lower()} "{name}" not found in namespace {namespace}')
    data = object_data(kind, obj)
    if key not in data:
        if optional:
            return None
        raise EnvConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def _env_from_values(sources: list[Mapping[str, Any]], lookup: Lookup, namespace: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for source in sources:
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if ref is None:
                continue
            obj = lookup(kind, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvConfigError(
                    f'{kind.lower()} "{ref.get("name", "")}" not found in namespace {namespace}'
                )
            for key, value in object_data(kind, obj).items():
                values[prefix + key] = value
    return values


def resolve_env(
    container: Mapping[str, Any], pod: Mapping[str, Any], facts: PodFacts, lookup: Lookup
) -> dict[str, str]:
    """The container's environment in kubelet order: envFrom first, then env entries in order,
    each literal value expanded against the variables defined before it."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    env = _env_from_values(list(container.get("envFrom") or []), lookup, namespace)
    for entry in container.get("env") or []:
        name = entry["name"]
        source = entry.get("valueFrom")
        if source is None:
            env[name] = expand(entry.get("value", ""), mapping_for(env))
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, facts, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            value = _referenced_value("Secret", source["secretKeyRef"], lookup, namespace)
        elif "configMapKeyRef" in source:
            value = _referenced_value("ConfigMap", source["configMapKeyRef"], lookup, namespace)
        elif "resourceFieldRef" in source:
            value = resource_value(container, pod, facts, source["resourceFieldRef"])
        else:
            raise EnvConfigError(
                f"env {name}: valueFrom {sorted(source)} is not supported by the process node; "
                "use value, fieldRef, resourceFieldRef, secretKeyRef or configMapKeyRef"
            )
        if value is not None:
            env[name] = value
    return env
