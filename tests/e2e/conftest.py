"""Fixtures for end-to-end tests: real training of the quickstart job on the process node.

- ``seeded``: MiniLM and the reviews dataset uploaded to the local S3 server once per session.
- ``e2e_operator``: the operator as a process for the test's namespace, reading progress every 2 s.
- ``quickstart_job``: a factory of quickstart manifests with a unique name (own checkpoint and
  output prefixes), one epoch instead of two so each test trains for about a minute or two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from localcluster.operator_process import OperatorProcess
from localcluster.quickstart import ensure_credentials, quickstart_manifest, with_spec
from localcluster.seed import seed_quickstart

E2E_OPERATOR_ARGS = (
    "--progress-interval-seconds",
    "2",
    "--checkpoint-event-interval-seconds",
    "5",
)


@pytest.fixture(scope="session")
def seeded(cluster: Any, s3: Any, s3_bucket: str) -> dict[str, str]:
    return seed_quickstart(s3, s3_bucket)


@pytest.fixture
def e2e_operator(cluster: Any, crds_installed: list[str], namespace: str) -> Iterator[OperatorProcess]:
    log = cluster.config.log_dir / f"operator-{namespace}.log"
    process = OperatorProcess(cluster.env(), namespace, log, extra_args=E2E_OPERATOR_ARGS)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def quickstart_job(
    cluster: Any, seeded: dict[str, str], core_v1: client.CoreV1Api, namespace: str, s3_bucket: str
) -> Callable[..., dict[str, Any]]:
    ensure_credentials(core_v1, namespace, cluster.s3_endpoint)

    def make(**sections: dict[str, Any]) -> dict[str, Any]:
        name = f"qs-{uuid.uuid4().hex[:6]}"
        manifest = quickstart_manifest(cluster.s3_endpoint, s3_bucket, name)
        # one epoch unless the test says otherwise (its `training` section is merged over this one)
        return with_spec(manifest, **{**sections, "training": {"epochs": 1, **sections.get("training", {})}})

    return make
