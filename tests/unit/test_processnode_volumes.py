"""PersistentVolumeClaim volumes on the process node, resolved as a kubelet does (claim -> bound PV ->
its directory), and read-only mounts that really are read-only."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcluster.processnode.envvars import EnvConfigError
from localcluster.processnode.launcher import Mount, Sandbox, prologue, unshare_works, wrapped_argv
from localcluster.processnode.volumes import container_mounts, prepare_volume, read_only_volumes

VOLUME = {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}


def claim(volume_name: str | None = "pv-data", phase: str = "Bound") -> dict[str, Any]:
    spec = {"volumeName": volume_name} if volume_name else {}
    return {"metadata": {"name": "data"}, "spec": spec, "status": {"phase": phase}}


def lookup_of(objects: dict[tuple[str, str], dict[str, Any]]):
    return lambda kind, name: objects.get((kind, name))


def prepare(objects: dict[tuple[str, str], dict[str, Any]], tmp_path: Path) -> str | None:
    return prepare_volume(VOLUME, tmp_path / "volumes" / "pvc-0", lookup_of(objects), "team-a")


def test_a_bound_hostpath_claim_is_the_pvs_directory(tmp_path):
    directory = tmp_path / "disk"
    directory.mkdir()
    pv = {"spec": {"hostPath": {"path": str(directory)}}}
    objects = {("PersistentVolumeClaim", "data"): claim(), ("PersistentVolume", "pv-data"): pv}
    assert prepare(objects, tmp_path) == str(directory)


def test_a_local_pv_is_its_path_and_directory_or_create_makes_the_directory(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    objects = {
        ("PersistentVolumeClaim", "data"): claim(),
        ("PersistentVolume", "pv-data"): {"spec": {"local": {"path": str(local)}}},
    }
    assert prepare(objects, tmp_path) == str(local)
    created = tmp_path / "created"
    objects[("PersistentVolume", "pv-data")] = {
        "spec": {"hostPath": {"path": str(created), "type": "DirectoryOrCreate"}}
    }
    assert prepare(objects, tmp_path) == str(created) and created.is_dir()


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        ({}, r'persistentvolumeclaim "data" not found in namespace team-a'),
        ({("PersistentVolumeClaim", "data"): claim(None, "Pending")}, r"is not bound .*phase Pending"),
        (
            {("PersistentVolumeClaim", "data"): claim()},
            r'bound to persistentvolume "pv-data", which does not',
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-data"): {"spec": {"nfs": {"server": "x", "path": "/"}}},
            },
            r"neither hostPath nor local",
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-data"): {"spec": {"hostPath": {"path": "/nonexistent/h13"}}},
            },
            r"directory /nonexistent/h13 .* does not exist",
        ),
    ],
)
def test_an_unusable_claim_is_a_config_error_naming_volume_and_claim(objects, expected, tmp_path):
    with pytest.raises(EnvConfigError, match=expected) as error:
        prepare(objects, tmp_path)
    assert str(error.value).startswith('volume pvc-0: persistentvolumeclaim "data"')


def test_read_only_claims_and_read_only_mounts_are_mounted_read_only(tmp_path):
    volumes = [VOLUME, {"name": "out", "persistentVolumeClaim": {"claimName": "out"}}, {"name": "s"}]
    container = {
        "volumeMounts": [
            {"name": "pvc-0", "mountPath": "/mnt/pvc/data"},
            {"name": "out", "mountPath": "/mnt/pvc/out"},
            {"name": "s", "mountPath": "/etc/s", "readOnly": True},
        ]
    }
    paths = {"pvc-0": str(tmp_path), "out": str(tmp_path), "s": str(tmp_path)}
    mounts = container_mounts(container, paths, tmp_path / "term", read_only_volumes(volumes))
    assert [(m.target, m.read_only) for m in mounts[:3]] == [
        ("/mnt/pvc/data", True),
        ("/mnt/pvc/out", False),
        ("/etc/s", True),
    ]
    script = prologue(Sandbox("h", str(tmp_path / "hosts"), str(tmp_path)), mounts, "")
    assert "mount -o remount,bind,ro /mnt/pvc/data" in script
    assert "mount -o remount,bind,ro /mnt/pvc/out" not in script


def test_a_read_only_mount_refuses_writes_inside_the_namespace(tmp_path):
    # The process node itself needs private mount namespaces (docs/local-cluster.md), so do we.
    assert unshare_works(), "unshare --mount does not work here: the process node cannot mount volumes"
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    (source / "data.txt").write_text("hello")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    # The prologue binds a hosts file over /etc/hosts too; only inside the private namespace.
    script = prologue(
        Sandbox("ro-test", str(hosts), str(tmp_path)), [Mount(str(source), str(target), False, True)], ""
    )
    argv = wrapped_argv(["/bin/sh", "-c", f"cat {target}/data.txt; touch {target}/new"], script, True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.startswith("hello")
    assert done.returncode != 0 and "Read-only file system" in done.stderr
    assert not (source / "new").exists()
