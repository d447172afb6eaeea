"""The local SeaweedFS S3 server through s3fs: write, read, list, delete (issue 2)."""

from __future__ import annotations

import uuid

import pytest
from fsspec import AbstractFileSystem

pytestmark = pytest.mark.cluster


def test_s3_write_read_list_delete(s3: AbstractFileSystem, s3_bucket: str) -> None:
    prefix = f"{s3_bucket}/tests/{uuid.uuid4().hex}"
    payload = b"checkpoint bytes \x00\x01" * 1000

    with s3.open(f"{prefix}/a.bin", "wb") as handle:
        handle.write(payload)
    s3.pipe(f"{prefix}/sub/b.txt", b"hello")

    assert s3.cat(f"{prefix}/a.bin") == payload
    assert sorted(s3.find(prefix)) == [f"{prefix}/a.bin", f"{prefix}/sub/b.txt"]
    assert s3.info(f"{prefix}/a.bin")["size"] == len(payload)

    s3.rm(prefix, recursive=True)
    assert not s3.exists(f"{prefix}/a.bin")
    # SeaweedFS keeps the emptied "directory" for a few minutes (it lists as a common prefix,
    # unlike AWS S3): readers must rely on objects (e.g. checkpoint manifests), not on prefixes.
    leftovers = {path: info["type"] for path, info in s3.find(prefix, detail=True, withdirs=True).items()}
    assert all(kind == "directory" for kind in leftovers.values()), leftovers


def test_env_file_points_at_the_s3_server(cluster_env: dict[str, str], s3_bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(
        key=cluster_env["AWS_ACCESS_KEY_ID"],
        secret=cluster_env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=cluster_env["AWS_ENDPOINT_URL"],
        skip_instance_cache=True,
    )
    assert cluster_env["S3_BUCKET"] == s3_bucket
    assert fs.exists(s3_bucket)
