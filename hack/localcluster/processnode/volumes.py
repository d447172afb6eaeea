"""Pod volumes as directories of the pod, and a container's mounts of them.

Why: inside its private mount namespace a container process sees each volume at its
mountPath through a bind mount (see ``launcher``), so code that writes to ``/data`` or reads
``/etc/config/x`` works unchanged. Supported: emptyDir (a per-pod directory that lives as long
as the pod), hostPath (the host directory itself), configMap and secret (files written once
at container start), and persistentVolumeClaim as a kubelet resolves it: the claim must be
Bound, and its PersistentVolume must be a ``hostPath`` or ``local`` volume, whose directory is
then mounted (anything else, or an unbound claim, is a CreateContainerConfigError naming the
claim, retried like a missing Secret). ``projected`` and ``downwardAPI`` volumes (the
ServiceAccount token a pod's in-cluster client uses) are written by ``projected``; other volume
types are skipped with a log line. ``readOnly`` mounts (and read-only claims) are bind-mounted read-only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localcluster.processnode.envvars import EnvConfigError, Lookup, object_data
from localcluster.processnode.launcher import DEFAULT_TERMINATION_PATH, Mount

log = logging.getLogger(__name__)


def read_only_volumes(volumes: list[Mapping[str, Any]]) -> frozenset[str]:
    """Names of the pod's volumes that are read-only at the source (read-only claims)."""
    return frozenset(
        volume["name"] for volume in volumes if (volume.get("persistentVolumeClaim") or {}).get("readOnly")
    )


def projected_files(volume: Mapping[str, Any], lookup: Lookup, namespace: str) -> dict[str, str] | None:
    """relative path -> content for configMap/secret volumes; None for other types."""
    for kind, field, name_key in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName")):
        source = volume.get(field)
        if source is None:
            continue
        name = source.get(name_key, "")
        obj = lookup(kind, name)
        if obj is None:
            if source.get("optional"):
                return {}
            raise EnvConfigError(
                f'volume {volume["name"]}: {kind.lower()} "{name}" not found in namespace {namespace}'
            )
        data = object_data(kind, obj)
        items = source.get("items")
        if not items:
            return dict(data)
        files = {}
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise EnvConfigError(
                    f"volume {volume['name']}: couldn't find key {item['key']} in {kind} {namespace}/{name}"
                )
            files[item["path"]] = data[item["key"]]
        return files
    return None


def claim_directory(volume: Mapping[str, Any], lookup: Lookup, namespace: str) -> str:
    """The host directory behind a persistentVolumeClaim volume: claim -> bound PV -> its path.

    Raises EnvConfigError (the pod waits, and says why) while the claim is missing or unbound, or
    when its volume is of a type the process node cannot mount.
    """
    claim_name = volume["persistentVolumeClaim"]["claimName"]
    where = f'volume {volume["name"]}: persistentvolumeclaim "{claim_name}"'
    claim = lookup("PersistentVolumeClaim", claim_name)
    if claim is None:
        raise EnvConfigError(f"{where} not found in namespace {namespace}")
    pv_name = (claim.get("spec") or {}).get("volumeName")
    phase = (claim.get("status") or {}).get("phase")
    if not pv_name or phase != "Bound":
        raise EnvConfigError(f"{where} is not bound to a PersistentVolume (phase {phase or 'unknown'})")
    pv = lookup("PersistentVolume", pv_name)
    if pv is None:
        raise EnvConfigError(f'{where} is bound to persistentvolume "{pv_name}", which does not exist')
    pv_spec = pv.get("spec") or {}
    if "hostPath" in pv_spec:
        path = pv_spec["hostPath"]["path"]
        if pv_spec["hostPath"].get("type") == "DirectoryOrCreate":
            os.makedirs(path, exist_ok=True)
    elif "local" in pv_spec:
        path = pv_spec["local"]["path"]
    else:
        raise EnvConfigError(
            f'{where} is bound to persistentvolume "{pv_name}", which is neither hostPath nor local: '
            "the process node can only mount volumes that are directories on this machine"
        )
    if not os.path.isdir(path):
        raise EnvConfigError(f'{where}: directory {path} of persistentvolume "{pv_name}" does not exist')
    return path


def prepare_volume(volume: Mapping[str, Any], directory: Path, lookup: Lookup, namespace: str) -> str | None:
    """Make the volume's directory ready; returns its host path, or None when unsupported."""
    if "hostPath" in volume:
        return volume["hostPath"]["path"]
    if "persistentVolumeClaim" in volume:
        return claim_directory(volume, lookup, namespace)
    if "emptyDir" in volume:
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory)
    files = projected_files(volume, lookup, namespace)
    if files is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return str(directory)


def container_mounts(
    container: Mapping[str, Any],
    volume_paths: Mapping[str, str | None],
    termination_file: Path,
    read_only_volumes: frozenset[str] = frozenset(),
) -> list[Mount]:
    """Bind mounts for one container: its volumeMounts (with subPath) and its termination file.

    A mount is read-only when the volumeMount says so or its volume is (``read_only_volumes``:
    claims with ``persistentVolumeClaim.readOnly``), as a kubelet mounts it.
    """
    mounts = []
    for volume_mount in container.get("volumeMounts") or []:
        source = volume_paths.get(volume_mount["name"])
        if source is None:
            log.info("volume %s is not supported by the process node; not mounted", volume_mount["name"])
            continue
        sub_path = volume_mount.get("subPath")
        if sub_path:
            source = os.path.join(source, sub_path)
            if not os.path.exists(source):
                os.makedirs(source, exist_ok=True)
        read_only = bool(volume_mount.get("readOnly")) or volume_mount["name"] in read_only_volumes
        mounts.append(
            Mount(
                source=source,
                target=volume_mount["mountPath"],
                is_file=os.path.isfile(source),
                read_only=read_only,
            )
        )
    target = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    mounts.append(Mount(source=str(termination_file), target=target, is_file=True))
    return mounts
