"""Fixtures: the operator as a real process (`python -m finetune_operator`) against the local cluster.

Why a subprocess and not Kopf in-process: the tests must see what users see (the CLI, peering, JSON
logs, /metrics, a process that can be SIGKILLed at any point and started again), and a crash of the
operator must not take the test runner with it.

- ``operator``: one operator per test, watching only that test's fresh namespace (so tests can run
  in parallel and kill their own operator), with a small restart backoff and resync, logging to
  ``.cluster/logs/operator-<namespace>.log``, ready when its /metrics answers. ``operator.kill()``
  (SIGKILL, a crash), ``operator.start()``, ``operator.restart()``, ``operator.metrics()``.
- ``finetunejobs``: a small client for FineTuneJobs in the test namespace (create, get, patch spec,
  delete, wait for a condition), plus helpers for their attempt Jobs and pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from finetune_testkit.finetunejobs import WAIT_TIMEOUT, FineTuneJobs
from localcluster.operator_process import OperatorProcess

__all__ = ["WAIT_TIMEOUT", "FineTuneJobs", "finetunejobs", "operator"]


@pytest.fixture
def operator(cluster: Any, crds_installed: list[str], namespace: str) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster.env(), namespace, cluster.config.log_dir / f"operator-{namespace}.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def finetunejobs(api_client: client.ApiClient, namespace: str) -> FineTuneJobs:
    return FineTuneJobs(api_client, namespace)
