"""The control plane's processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Why these flags (each one is a decision, so they live together here as pure argv builders):

- Everything listens on 127.0.0.1 only (docs/architecture.md, "Loopback only"); the API server
  advertises 127.0.0.1.
- The Service range is inside 127.0.0.0/8 (see ``config.SERVICE_CIDR``). Nothing routes Service
  IPs here (there is no kube-proxy), so nothing dials them; Services exist for DNS names and
  selectors, and the process node resolves pod DNS names itself.
- ``--endpoint-reconciler-type=none``: Endpoints may not hold loopback addresses, so the
  ``kubernetes`` Service's endpoints are not maintained. In-cluster clients use a kubeconfig.
- For the same reason the controller manager runs without its Endpoints, EndpointSlice and
  EndpointSlice-mirroring controllers (``ENDPOINT_CONTROLLERS_OFF``): every pod IP here is a 127.x
  address, which the API server refuses in an Endpoints or EndpointSlice, so each of their writes
  failed and was retried, with a Warning Event per failure (14,620 log lines and as many Events in
  one 1,000-job benchmark, issue 16). Nothing here reads endpoints: the process node resolves pod
  DNS names itself and no kube-proxy routes Service IPs.
- Authorization ``Node,RBAC`` and admission ``NodeRestriction,ExtendedResourceToleration`` (the
  latter lets pods that request ``nvidia.com/gpu`` tolerate the GPU nodes' taint, as on GKE).
- Service-account tokens: the API server signs with ``sa.key``, the controller manager's token
  controller gets the same key and the CA (``--root-ca-file``) to publish ``kube-root-ca.crt``.
- ``--kubelet-client-certificate``/``--kubelet-certificate-authority``: `kubectl logs` goes through
  the API server to a node's kubelet endpoint; the process node serves it over TLS with a
  certificate of the cluster CA and accepts only this client certificate (mutual TLS; loopback only).
- No leader election (one replica each, faster start); etcd without fsync (test data only).
- Controller manager and scheduler get higher client QPS so benchmarks with thousands of pods are
  limited by the controllers, not by client-side throttling.
"""

from __future__ import annotations

from pathlib import Path

from localcluster.config import SERVICE_CIDR, ClusterConfig
from localcluster.processes import DaemonSpec


def first_service_ip(cidr: str = SERVICE_CIDR) -> str:
    """The ClusterIP of the ``kubernetes`` Service: the first address of the range."""
    network = cidr.split("/")[0]
    octets = network.split(".")
    octets[3] = str(int(octets[3]) + 1)
    return ".".join(octets)


def etcd_spec(config: ClusterConfig) -> DaemonSpec:
    client = f"http://127.0.0.1:{config.ports.etcd_client}"
    peer = f"http://127.0.0.1:{config.ports.etcd_peer}"
    return DaemonSpec(
        name="etcd",
        argv=(
            str(config.etcd_bin_dir / "etcd"),
            "--name=local",
            f"--data-dir={config.etcd_data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ),
    )


def apiserver_spec(config: ClusterConfig) -> DaemonSpec:
    pki = config.pki_dir
    return DaemonSpec(
        name="kube-apiserver",
        argv=(
            str(config.kubernetes_bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{config.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={config.ports.apiserver}",
            f"--cert-dir={pki / 'apiserver-generated'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,ExtendedResourceToleration",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none",
            f"--service-account-issuer={config.apiserver_url}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
            "--v=1",
        ),
    )


def component_kubeconfig(config: ClusterConfig, component: str) -> Path:
    return config.pki_dir / f"{component}.kubeconfig"


def _component_argv(config: ClusterConfig, component: str, port: int, *own_flags: str) -> tuple[str, ...]:
    """argv of kube-controller-manager or kube-scheduler: the flags they share around their own."""
    kubeconfig = component_kubeconfig(config, component)
    return (
        str(config.kubernetes_bin_dir / f"kube-{component}"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={config.pki_dir / f'{component}-generated'}",
        "--leader-elect=false",
        *own_flags,
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--v=1",
    )


ENDPOINT_CONTROLLERS_OFF = (
    "--controllers=*,-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller"
)


def controller_manager_spec(config: ClusterConfig) -> DaemonSpec:
    pki = config.pki_dir
    return DaemonSpec(
        name="kube-controller-manager",
        argv=_component_argv(
            config,
            "controller-manager",
            config.ports.controller_manager,
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            ENDPOINT_CONTROLLERS_OFF,
        ),
    )


def scheduler_spec(config: ClusterConfig) -> DaemonSpec:
    return DaemonSpec(
        name="kube-scheduler", argv=_component_argv(config, "scheduler", config.ports.scheduler)
    )
