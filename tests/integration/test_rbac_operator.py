"""The operator, holding only a token of the chart's ServiceAccount, takes a job to Succeeded.

This is the proof that the chart's RBAC suffices: the operator process runs exactly as in the
Deployment (its flags, peering on, the chart's peering object) but authenticates with a TokenRequest
token instead of the admin kubeconfig. The watched namespace enforces Pod Security "restricted", so
the trainer pods the Job controller creates there must pass it too. Workers run on KWOK GPU nodes;
the test plays the kubelet and ends them with exit code 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finetune_testkit.finetunejobs import FineTuneJobs
from localcluster.kwokpods import succeed_pod
from localcluster.operator_process import OperatorProcess
from tests.plugins.helm import Release, service_account_kubeconfig

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# The operator tries to create the peering object that the chart already made (the chart does not
# grant create on peerings); that 403 is logged as a warning and is harmless.
TOLERATED_DENIALS = ("could not create the Kopf peering object",)


@pytest.mark.parametrize("scope", ["namespaced", "cluster"])
def test_operator_with_the_chart_service_account_runs_a_job_to_succeeded(
    chart_release: Callable[..., Release],
    namespace: str,
    extra_namespaces: Callable[..., str],
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    cluster: Any,
    tmp_path: Path,
    scope: str,
) -> None:
    watched = extra_namespaces("ml", labels=RESTRICTED)
    release = chart_release(namespace, {"rbac.scope": scope, "operator.watchNamespaces": [watched]})
    core_v1.create_namespaced_secret(
        watched, {"metadata": {"name": "s3-credentials"}, "stringData": {"AWS_ACCESS_KEY_ID": "test"}}
    )
    kubeconfig = service_account_kubeconfig(
        core_v1, cluster.kubeconfig, namespace, release.service_account, tmp_path / "operator.kubeconfig"
    )
    log_path = cluster.config.log_dir / f"operator-sa-{watched}.log"
    operator = OperatorProcess(
        {**cluster.env(), "KUBECONFIG": str(kubeconfig)}, watched, log_path, ("--peering", release.name)
    )
    operator.start()
    try:
        jobs = FineTuneJobs(api_client, watched)
        jobs.create(FineTuneJobs.manifest("rbac", workers=2, gpus=1))
        pods = jobs.wait_pods_running("rbac", attempt=1, count=2)
        for pod in pods:
            succeed_pod(core_v1, watched, pod.metadata.name)
        status = jobs.wait_condition("rbac", "Succeeded")
        assert status["phase"] == "Succeeded"
    finally:
        operator.stop()
    denials = [
        line
        for line in log_path.read_text().splitlines()
        if re.search(r"forbidden|(?<![\d.:])403(?!\d)", line, re.IGNORECASE)  # not a timestamp's .403
        and not any(t in line for t in TOLERATED_DENIALS)
    ]
    assert denials == [], f"the operator was denied something with the chart's RBAC (see {log_path})"
