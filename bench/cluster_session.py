"""The shared local cluster as the benchmarks use it: reuse or start it, and leave it as found.

Why care: other sessions run tests on the same cluster at the same time. The benchmarks register as
a user the way the pytest plugin does (``.cluster/run/users/<pid>``), so a test session finishing
does not stop the cluster under a running benchmark; they work in their own namespaces (prefix
``bench-``) and their own bench-only nodes, and remove both afterwards.

The operator gets its own identity, a ServiceAccount token, and a FlowSchema that matches only that
identity: the API server's own ``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}``
then counts exactly the requests the operator made (``apiserver_request_total`` has no per-client
label). The FlowSchema sends them to the ``exempt`` priority level, so API Priority and Fairness
never queues the operator during the benchmark; the counters are kept for exempt requests too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from bench import promtext, report, scale_plan
from localcluster import cluster as localcluster
from localcluster import health, kwok
from localcluster.config import ClusterConfig, load_config
from localcluster.kubeconfig import parse_env
from localcluster.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
OPERATOR_SA_NAMESPACE = "bench-system"
OPERATOR_SA = "bench-operator"
FLOW_SCHEMA = "finetune-bench-operator"
FLOW_METRIC = "apiserver_flowcontrol_dispatched_requests_total"


class BenchCluster:
    """A handle on the running local cluster, registered as a user while open."""

    def __init__(self) -> None:
        self.config: ClusterConfig = load_config()
        self._marker: Path | None = None
        self.api: client.ApiClient | None = None

    def __enter__(self) -> BenchCluster:
        users = self.config.run_dir / "users"
        with localcluster.cluster_lock(self.config):
            users.mkdir(parents=True, exist_ok=True)
            self._marker = users / str(os.getpid())
            self._marker.touch()
        localcluster.up(self.config, owner="bench")
        self.api = health.api_client(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.api is not None:
            self.api.close()
        if self._marker is not None:
            with localcluster.cluster_lock(self.config):
                self._marker.unlink(missing_ok=True)

    # --- clients -----------------------------------------------------------------------------
    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``.cluster/env``: for subprocesses (kubectl, the operator)."""
        return {**os.environ, **parse_env(self.config.env_file.read_text(), os.environ.get("PATH", ""))}

    def s3(self) -> Any:
        """An s3fs filesystem on the cluster's S3 server (credentials from ``.cluster/env``)."""
        import fsspec

        env = self.env()
        return fsspec.filesystem(
            "s3",
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=env["AWS_ENDPOINT_URL"],
            skip_instance_cache=True,
        )

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(self.config.kubectl), *args],
            env=self.env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def install_crds(self) -> None:
        """Our CRDs; only the FineTuneJob's is required (the benchmarks create nothing else), so a
        broken sibling CRD is reported and skipped instead of failing the benchmark."""
        for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
            try:
                apply = ("apply", "--server-side", "--force-conflicts", "--field-manager=finetune-bench")
                self.kubectl(*apply, "-f", str(path))
            except RuntimeError as error:
                if path.name == "finetunejob.yaml":
                    raise
                report.progress(f"warning: {path.name} not installed: {str(error)[:300]}")
        self.wait_established("finetunejobs.finetune.dev")

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Until the CRD is served. Not `kubectl wait --for=condition=Established`: right after a
        create, kubectl 1.35 fails at once on a CRD with no status.conditions yet instead of waiting."""
        established = '{.status.conditions[?(@.type=="Established")].status}'
        wait_until(
            lambda: self.kubectl("get", f"crd/{crd}", "-o", f"jsonpath={established}").strip() == "True",
            timeout,
            f"the CRD {crd} to be Established",
            poll=0.2,
        )

    # --- namespaces ----------------------------------------------------------------------------
    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": {"finetune.dev/bench": "true"}}})
        wait_until(
            lambda: self.core.read_namespaced_service_account("default", name),
            60,
            f"the default ServiceAccount of namespace {name}",
        )

    def delete_namespace(self, name: str, wait: float = 300) -> float:
        """Delete and wait until the namespace is gone; return the seconds it took."""
        started = time.monotonic()
        try:
            self.core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise
        wait_until(lambda: _absent(self.core.read_namespace, name), wait, f"namespace {name} to be deleted")
        return time.monotonic() - started

    # --- bench-only nodes ------------------------------------------------------------------------
    def create_bench_nodes(self, count: int, prefix: str = "bench-gpu", first_index: int = 1000) -> list[str]:
        names = [f"{prefix}-{index:03d}" for index in range(count)]

        def create(item: tuple[int, str]) -> None:
            index, name = item
            try:
                self.core.create_node(scale_plan.bench_node(kwok.gpu_node(name, first_index + index)))
            except ApiException as error:
                if error.status != 409:
                    raise

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, enumerate(names)))
        selector = f"{scale_plan.BENCH_NODE_LABEL}=true"

        def ready() -> bool:
            nodes = self.core.list_node(label_selector=selector).items
            ok = sum(1 for node in nodes if node.metadata.name in set(names) and _node_ready(node))
            return ok >= count

        wait_until(ready, 300, f"{count} bench nodes to be Ready", hint=f"see {self.config.log_dir}/kwok.log")
        return names

    def delete_bench_nodes(self) -> None:
        self.core.delete_collection_node(label_selector=f"{scale_plan.BENCH_NODE_LABEL}=true")

    # --- the operator's own identity -----------------------------------------------------------
    def operator_kubeconfig(
        self, path: Path, account: str = OPERATOR_SA, flow_schema: str = FLOW_SCHEMA
    ) -> Path:
        """A kubeconfig for the ServiceAccount ``bench-system/<account>`` (cluster-admin), whose
        requests the FlowSchema ``flow_schema`` counts (the peer benchmark has its own pair)."""
        try:
            self.core.create_namespace({"metadata": {"name": OPERATOR_SA_NAMESPACE}})
        except ApiException as error:
            if error.status != 409:
                raise
        _create_or_keep(
            self.core.create_namespaced_service_account,
            OPERATOR_SA_NAMESPACE,
            {"metadata": {"name": account}},
        )
        rbac = client.RbacAuthorizationV1Api(self.api)
        _create_or_keep(
            rbac.create_cluster_role_binding,
            None,
            {
                "metadata": {"name": flow_schema},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": OPERATOR_SA_NAMESPACE}],
            },
        )
        flow = client.FlowcontrolApiserverV1Api(self.api)
        _create_or_keep(flow.create_flow_schema, None, operator_flow_schema(account, flow_schema))
        token = self.core.create_namespaced_service_account_token(
            account, OPERATOR_SA_NAMESPACE, {"spec": {"expirationSeconds": 7200}}
        ).status.token
        admin = yaml.safe_load(self.config.kubeconfig.read_text())
        cluster = admin["clusters"][0]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "bench", "context": {"cluster": cluster["name"], "user": account}}],
            "current-context": "bench",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def delete_operator_identity(self, account: str = OPERATOR_SA, flow_schema: str = FLOW_SCHEMA) -> None:
        """Remove what :meth:`operator_kubeconfig` made, leaving the cluster as found."""
        rbac = client.RbacAuthorizationV1Api(self.api)
        flow = client.FlowcontrolApiserverV1Api(self.api)
        for delete, name in (
            (rbac.delete_cluster_role_binding, flow_schema),
            (flow.delete_flow_schema, flow_schema),
        ):
            try:
                delete(name)
            except ApiException as error:
                if error.status != 404:
                    raise
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_service_account(account, OPERATOR_SA_NAMESPACE)
        if account == OPERATOR_SA:
            self.delete_namespace(OPERATOR_SA_NAMESPACE, wait=120)  # a next run can create it again

    # --- the API server's own counters ---------------------------------------------------------
    def apiserver_metrics(self, *names: str) -> list[promtext.Sample]:
        response = self.api.call_api("GET", f"{self.api.configuration.host}/metrics")
        return promtext.parse(response.read().decode(), names)

    def request_counts(self) -> dict[str, float]:
        """Requests dispatched per FlowSchema, and every request the API server served (``_all``)."""
        samples = self.apiserver_metrics(FLOW_METRIC, "apiserver_request_total")
        counts = promtext.by_label(samples, FLOW_METRIC, "flow_schema")
        counts["_all"] = promtext.total(samples, "apiserver_request_total")
        return counts


def operator_flow_schema(account: str = OPERATOR_SA, name: str = FLOW_SCHEMA) -> dict[str, Any]:
    """A FlowSchema that matches only one bench ServiceAccount (see module docstring)."""
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": account, "namespace": OPERATOR_SA_NAMESPACE},
    }
    every_resource = {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
        "namespaces": ["*"],
        "clusterScope": True,
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "matchingPrecedence": 300,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [
                {
                    "subjects": [subject],
                    "resourceRules": [every_resource],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def _absent(read: Any, *args: Any) -> bool:
    try:
        read(*args)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def _create_or_keep(create: Any, namespace: str | None, body: dict[str, Any]) -> None:
    try:
        create(namespace, body) if namespace else create(body)
    except ApiException as error:
        if error.status != 409:
            raise


def _node_ready(node: client.V1Node) -> bool:
    conditions = {c.type: c.status for c in (node.status.conditions or [])}
    return conditions.get("Ready") == "True"
