"""A bench namespace with S3 credentials and an operator watching it, removed afterwards.

Why one place: the quality benchmark, the sweep benchmark and its quality sweep all need the same
setup on the shared local cluster: our CRDs, a fresh ``bench-*`` namespace, the ``s3-credentials``
Secret the specs name, an S3 prefix of their own and the operator (default settings, its own
identity) watching only that namespace; and the same teardown, even when the run fails, so the
shared cluster is left as found.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.cluster_session import BenchCluster
from bench.operator_process import OperatorProcess

SECRET = "s3-credentials"
PROCESS_NODE_PLACEMENT: dict[str, Any] = {
    "nodeSelector": {"finetune.dev/process-node": "true"},
    "tolerations": [{"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}],
}
"""What a spec's ``resources`` needs to run on the process node (real training) instead of KWOK."""


@dataclass
class OperatorNamespace:
    cluster: BenchCluster
    namespace: str
    prefix: str  # s3://bucket/bench/<namespace>
    operator: OperatorProcess

    def put(self, local: str, key: str, recursive: bool = False) -> str:
        """Upload a local file or directory under the prefix; returns its s3:// URI."""
        self.cluster.s3().put(local, f"{self.prefix.removeprefix('s3://')}/{key}", recursive=recursive)
        return f"{self.prefix}/{key}"

    def read_text(self, key: str) -> str:
        return self.cluster.s3().cat_file(f"{self.prefix.removeprefix('s3://')}/{key}").decode()

    def wait_finished(self, plural: str, name: str, timeout: float) -> dict[str, Any]:
        """The status of our custom object ``name`` once its phase is Succeeded or Failed."""
        from finetune_api.constants import GROUP, VERSION
        from localcluster.waiting import wait_until

        def finished() -> dict[str, Any] | None:
            custom = self.cluster.custom
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)
            status = obj.get("status") or {}
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        hint = f"see {self.operator.log_path}"
        return wait_until(finished, timeout, f"{plural}/{name} finished", hint=hint, poll=2.0)


@contextlib.contextmanager
def operator_namespace(label: str, wait: float = 300) -> Iterator[OperatorNamespace]:
    """``bench-<label>-<random>`` with the Secret, the S3 prefix and a started operator."""
    with BenchCluster() as cluster:
        cluster.install_crds()
        kubeconfig = cluster.operator_kubeconfig(cluster.config.state_dir / "bench" / "operator.kubeconfig")
        namespace = f"bench-{label}-{uuid.uuid4().hex[:5]}"
        env = cluster.env()
        prefix = f"s3://{env.get('S3_BUCKET', 'finetune')}/bench/{namespace}"
        operator = OperatorProcess(
            env, namespace, kubeconfig, cluster.config.log_dir / f"operator-{namespace}.log"
        )
        try:
            cluster.create_namespace(namespace)
            secret = {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
            body = {"metadata": {"name": SECRET}, "stringData": secret}
            cluster.core.create_namespaced_secret(namespace, body)
            operator.start()
            yield OperatorNamespace(cluster, namespace, prefix, operator)
        finally:
            operator.stop()
            cluster.delete_namespace(namespace, wait=wait)
            with contextlib.suppress(FileNotFoundError):
                cluster.s3().rm(prefix.removeprefix("s3://"), recursive=True)
            cluster.delete_operator_identity()
