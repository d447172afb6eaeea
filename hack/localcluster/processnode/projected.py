"""What a kubelet and kube-proxy give a pod so that in-cluster clients work.

Why: a program that runs in a pod (the operator installed by its chart) finds the API server the
standard way, ``rest.InClusterConfig``: ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``
from the environment and a ServiceAccount token, ``ca.crt`` and ``namespace`` under
``/var/run/secrets/kubernetes.io/serviceaccount``. The ServiceAccount admission plugin puts a
``projected`` volume (``kube-api-access-*``: a ``serviceAccountToken`` source, the
``kube-root-ca.crt`` ConfigMap, the downward-API namespace) and its mount into every pod; the
kubelet fills it, requesting the token from the TokenRequest API bound to the pod, and renews the
token before it expires. This module does the same for the process node:

- ``projected`` and ``downwardAPI`` volumes are written into the pod's volume directory (files
  replaced atomically, so a reader never sees half a token); ``serviceAccountToken`` sources come
  from TokenRequest with the pod as bound object, so the token dies with the pod.
- :func:`refresh_due` says when to write them again: at 80 % of the shortest token lifetime (at
  most 24 h), as the kubelet's token manager does. The pod worker rewrites them then.
- :class:`ApiServerAddress` is the API server as the pod dials it. kube-proxy would route the
  ``kubernetes`` Service's ClusterIP to the API server; the local cluster has no kube-proxy and its
  Service IPs do not route, so ``KUBERNETES_SERVICE_HOST``/``PORT`` name the API server's own
  loopback address from the process node's kubeconfig (never anything but loopback,
  docs/architecture.md, "Loopback only").
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localcluster.processnode.envvars import EnvConfigError, Lookup, PodFacts, field_value, resource_value
from localcluster.processnode.volumes import projected_files as object_files

REFRESH_FRACTION = 0.8  # the kubelet renews a token once 80 % of its lifetime has passed
MAX_REFRESH_SECONDS = 24 * 3600
DEFAULT_TOKEN_SECONDS = 3600

# request(namespace, service_account, audience, expiration_seconds, pod_name, pod_uid)
#   -> (token, expiration as Unix time)
TokenRequester = Callable[[str, str, str, int, str, str], tuple[str, float]]


@dataclass(frozen=True)
class ApiServerAddress:
    """The API server as pods reach it (what kube-proxy makes of the ``kubernetes`` Service)."""

    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> ApiServerAddress:
        """From the process node's kubeconfig server URL; refuses anything but a loopback address."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if parts.scheme != "https" or not loopback:
            raise ValueError(
                f"the API server {url!r} of the process node's kubeconfig is not https on a loopback "
                "IP address; pods get KUBERNETES_SERVICE_HOST from it and may only dial loopback"
            )
        return cls(host=host, port=parts.port or 443)

    def environment(self) -> dict[str, str]:
        """The variables a kubelet sets for the ``kubernetes`` Service in every container."""
        url = f"tcp://{self.host}:{self.port}"
        prefix = f"KUBERNETES_PORT_{self.port}_TCP"
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port),
            "KUBERNETES_PORT": url,
            prefix: url,
            f"{prefix}_PROTO": "tcp",
            f"{prefix}_PORT": str(self.port),
            f"{prefix}_ADDR": self.host,
        }


@dataclass(frozen=True)
class Written:
    """The projected volumes of one pod as written: name -> directory, and when to write them again."""

    paths: dict[str, str]
    refresh_at: float | None  # Unix time; None: nothing in them expires


def is_projected(volume: Mapping[str, Any]) -> bool:
    return "projected" in volume or "downwardAPI" in volume


def _metadata_map(pod: Mapping[str, Any], section: str) -> str:
    """``metadata.labels``/``annotations`` as a downwardAPI volume file: sorted ``key="value"`` lines."""
    values = (pod.get("metadata") or {}).get(section) or {}
    return "\n".join(f'{key}="{values[key]}"' for key in sorted(values))


def downward_files(items: list[Mapping[str, Any]], pod: Mapping[str, Any], facts: PodFacts) -> dict[str, str]:
    """The files of a downwardAPI volume (or projected source)."""
    files: dict[str, str] = {}
    for item in items:
        if "fieldRef" in item:
            path = item["fieldRef"]["fieldPath"]
            if path in ("metadata.labels", "metadata.annotations"):
                files[item["path"]] = _metadata_map(pod, path.split(".", 1)[1])
            else:
                files[item["path"]] = field_value(pod, facts, path)
        elif "resourceFieldRef" in item:
            files[item["path"]] = resource_value({}, pod, facts, item["resourceFieldRef"])
        else:
            raise EnvConfigError(
                f"downwardAPI item {item.get('path')!r} has neither fieldRef nor resourceFieldRef"
            )
    return files


def source_files(
    volume_name: str,
    source: Mapping[str, Any],
    pod: Mapping[str, Any],
    facts: PodFacts,
    lookup: Lookup,
    request_token: TokenRequester,
) -> tuple[dict[str, str], float | None]:
    """The files of one projected source, and when its token (if any) expires."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace", "")
    if "configMap" in source:
        files = object_files({"name": volume_name, "configMap": source["configMap"]}, lookup, namespace)
        return files or {}, None
    if "secret" in source:
        secret = dict(source["secret"])
        secret["secretName"] = secret.pop("name", "")
        return object_files({"name": volume_name, "secret": secret}, lookup, namespace) or {}, None
    if "downwardAPI" in source:
        return downward_files(list(source["downwardAPI"].get("items") or []), pod, facts), None
    if "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        token, expires = request_token(
            namespace, account, spec.get("audience", ""), seconds, meta.get("name", ""), meta.get("uid", "")
        )
        return {spec["path"]: token}, expires
    raise EnvConfigError(
        f"volume {volume_name}: projected source {sorted(source)} is not supported by the process node; "
        "use serviceAccountToken, configMap, secret or downwardAPI"
    )


def write_atomically(directory: Path, files: Mapping[str, str]) -> None:
    """Write each file by rename, so a container reading it never sees a partial token."""
    for relative, content in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(handle, "w") as out:
            out.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)


def refresh_time(issued: float, expires: float) -> float:
    """When the kubelet would renew a token issued at ``issued`` that expires at ``expires``."""
    return issued + min((expires - issued) * REFRESH_FRACTION, MAX_REFRESH_SECONDS)


def write_projected_volumes(
    pod: Mapping[str, Any],
    volume_dir: Callable[[str], Path],
    facts: PodFacts,
    lookup: Lookup,
    request_token: TokenRequester,
) -> Written:
    """Write every projected/downwardAPI volume of ``pod``; raises EnvConfigError while a
    reference is missing (the container waits with CreateContainerConfigError, as on a kubelet)."""
    paths: dict[str, str] = {}
    refresh_at: float | None = None
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if not is_projected(volume):
            continue
        if "downwardAPI" in volume:
            sources: list[Mapping[str, Any]] = [{"downwardAPI": volume["downwardAPI"]}]
        else:
            sources = list(volume["projected"].get("sources") or [])
        files: dict[str, str] = {}
        for source in sources:
            issued = time.time()
            more, expires = source_files(volume["name"], source, pod, facts, lookup, request_token)
            files.update(more)
            if expires is not None:
                due = refresh_time(issued, expires)
                refresh_at = due if refresh_at is None else min(refresh_at, due)
        directory = volume_dir(volume["name"])
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(directory, files)
        paths[volume["name"]] = str(directory)
    return Written(paths=paths, refresh_at=refresh_at)


@dataclass(frozen=True)
class NodeServices:
    """What the node gives every pod besides its spec: the API server's address and tokens."""

    api_server: ApiServerAddress
    request_token: TokenRequester
