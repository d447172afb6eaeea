"""Pure parts of the local cluster: configuration, rendered files, node manifests, build flags."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from localcluster.binaries import build_steps, kubernetes_ldflags
from localcluster.config import DEFAULT_PORT_BASE, KWOK_POD_CIDR, SERVICE_CIDR, load_config
from localcluster.controlplane import apiserver_spec, controller_manager_spec, first_service_ip
from localcluster.kubeconfig import env_values, parse_env, render_env
from localcluster.kwok import gpu_node, node_ip
from localcluster.kwokpods import terminated_status
from localcluster.pki import serving_sans

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def test_defaults_and_overrides(tmp_path: Path) -> None:
    default = load_config({})
    assert default.ports.apiserver == DEFAULT_PORT_BASE + 3
    assert default.state_dir.name == ".cluster"
    moved = load_config({"LOCALCLUSTER_DIR": str(tmp_path), "LOCALCLUSTER_PORT_BASE": "30000"})
    assert moved.kubeconfig == tmp_path / "kubeconfig"
    assert moved.apiserver_url == "https://127.0.0.1:30003"
    assert moved.s3_endpoint == "http://127.0.0.1:30010"


@pytest.mark.parametrize("value", ["abc", "80", "65530"])
def test_bad_port_base_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="LOCALCLUSTER_PORT_BASE"):
        load_config({"LOCALCLUSTER_PORT_BASE": value})


def test_all_ports_distinct() -> None:
    ports = load_config({}).ports
    values = [
        getattr(ports, name) for name in dir(type(ports)) if isinstance(getattr(type(ports), name), property)
    ]
    assert len(values) == len(set(values))


def test_every_range_and_address_is_loopback() -> None:
    assert ipaddress.ip_network(SERVICE_CIDR).subnet_of(LOOPBACK)
    assert ipaddress.ip_network(KWOK_POD_CIDR).subnet_of(LOOPBACK)
    assert ipaddress.ip_address(first_service_ip()) in LOOPBACK
    for index in (0, 1, 245, 246, 5000):
        assert ipaddress.ip_address(node_ip(index)) in LOOPBACK
    assert len({node_ip(i) for i in range(1000)}) == 1000


def test_apiserver_binds_and_advertises_loopback_only() -> None:
    argv = apiserver_spec(load_config({})).argv
    assert "--bind-address=127.0.0.1" in argv
    assert "--advertise-address=127.0.0.1" in argv
    assert any(
        arg.startswith("--enable-admission-plugins=") and "ExtendedResourceToleration" in arg for arg in argv
    )
    assert "--authorization-mode=Node,RBAC" in argv


def test_controller_manager_runs_no_endpoint_controllers_whose_writes_loopback_ips_fail() -> None:
    argv = controller_manager_spec(load_config({})).argv
    (controllers,) = [arg for arg in argv if arg.startswith("--controllers=")]
    enabled = controllers.removeprefix("--controllers=").split(",")
    assert enabled[0] == "*"  # every other default controller (job, garbage collector, ...) stays on
    assert {
        "-endpoints-controller",
        "-endpointslice-controller",
        "-endpointslice-mirroring-controller",
    } <= set(enabled)


def test_serving_certificate_names() -> None:
    sans = serving_sans("127.96.0.1")
    assert "IP:127.0.0.1" in sans and "IP:127.96.0.1" in sans and "DNS:kubernetes.default.svc" in sans


def test_env_file_round_trip(tmp_path: Path) -> None:
    values = env_values(
        tmp_path / "kubeconfig", Path("/cache/k8s"), "http://127.0.0.1:1", "ak", "s k", "bucket"
    )
    text = render_env(values)
    assert "export KUBECONFIG=" in text and 'export PATH=/cache/k8s:"$PATH"' in text
    parsed = parse_env(text, "/usr/bin")
    assert parsed["PATH"] == "/cache/k8s:/usr/bin"
    assert parsed["AWS_SECRET_ACCESS_KEY"] == "s k"
    assert set(parsed) == {
        "KUBECONFIG",
        "PATH",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_BUCKET",
    }


def test_gpu_node_manifest() -> None:
    node = gpu_node("gpu-7", 7)
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == "8"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert node["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": node_ip(7)}


def test_kubernetes_version_is_stamped() -> None:
    flags = kubernetes_ldflags("v1.35.4")
    assert "k8s.io/component-base/version.gitVersion=v1.35.4" in flags
    assert "k8s.io/component-base/version.gitMinor=35" in flags
    steps = {step.component.split()[0]: step for step in build_steps(load_config({}))}
    assert set(steps) == {"etcd", "kubernetes", "kwok", "kueue", "prometheus"}
    assert steps["prometheus"].outputs == ("prometheus", "promtool")
    assert steps["kubernetes"].outputs == (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    )


def test_process_node_pod_ranges_of_two_clusters_never_overlap() -> None:
    default = load_config({})
    private = load_config({"LOCALCLUSTER_PORT_BASE": "27000"})
    assert default.process_node_pod_cidr == "127.0.0.0/16"
    assert private.process_node_pod_cidr == "127.15.0.0/16"
    blocks = {
        load_config({"LOCALCLUSTER_PORT_BASE": str(26400 + 40 * n)}).process_node_pod_cidr for n in range(60)
    }
    assert len(blocks) == 60


def test_terminated_status_keeps_start_time_and_message() -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    pod = client.V1Pod(
        spec=client.V1PodSpec(containers=[client.V1Container(name="worker", image="img")]),
        status=client.V1PodStatus(
            container_statuses=[
                client.V1ContainerStatus(
                    name="worker",
                    image="img",
                    image_id="",
                    ready=True,
                    restart_count=0,
                    state=client.V1ContainerState(running=client.V1ContainerStateRunning(started_at=started)),
                )
            ]
        ),
    )
    patch = terminated_status(pod, "Failed", 78, "Error", "bad config")
    terminated = patch["status"]["containerStatuses"][0]["state"]["terminated"]
    assert patch["status"]["phase"] == "Failed"
    assert terminated == {
        **terminated,
        "exitCode": 78,
        "message": "bad config",
        "startedAt": "2026-01-02T03:04:05Z",
    }
