"""Probe thresholds, probe actions against real sockets, projected volumes and the service env."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.processnode.envvars import EnvConfigError, PodFacts
from localcluster.processnode.podstatus import (
    RUNNING,
    ContainerRecord,
    PodFactsForStatus,
    ProbeView,
    pod_status,
)
from localcluster.processnode.probes import ProbeSpec, Target, Threshold, container_probes, run_probe
from localcluster.processnode.projected import ApiServerAddress, refresh_time, write_projected_volumes


def spec(**fields: int) -> ProbeSpec:
    return ProbeSpec.from_spec("readinessProbe", {"httpGet": {"port": 1}, **fields})


def test_threshold_flips_only_after_enough_consecutive_outcomes() -> None:
    threshold = Threshold(spec(successThreshold=2, failureThreshold=3), initial=False)
    assert not threshold.observe(True) and not threshold.result
    assert not threshold.observe(False)  # the streak of successes is broken
    assert not threshold.observe(True)
    assert threshold.observe(True) and threshold.result
    assert [threshold.observe(False) for _ in range(3)] == [False, False, True]
    assert not threshold.result


def test_probe_defaults_are_the_kubelets() -> None:
    probes = container_probes({"livenessProbe": {"tcpSocket": {"port": 80}}})
    live = probes["livenessProbe"]
    assert (live.initial_delay, live.period, live.timeout) == (0, 10, 1)
    assert (live.success_threshold, live.failure_threshold) == (1, 3)


@pytest.fixture
def server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 500)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_http_and_tcp_probes_against_a_real_server(server: int) -> None:
    target = Target(pod_ip="127.0.0.1", ports={"health": server}, pid=0, env={})
    ok = ProbeSpec.from_spec("readinessProbe", {"httpGet": {"path": "/healthz", "port": "health"}})
    bad = ProbeSpec.from_spec("readinessProbe", {"httpGet": {"path": "/other", "port": server}})
    assert run_probe(ok, target) == (True, "")
    assert run_probe(bad, target) == (False, "HTTP probe failed with statuscode: 500")
    assert run_probe(ProbeSpec.from_spec("livenessProbe", {"tcpSocket": {"port": server}}), target)[0]
    unknown = ProbeSpec.from_spec("livenessProbe", {"httpGet": {"port": "nope"}})
    assert "not a named port" in run_probe(unknown, target)[1]
    assert (
        "only httpGet, tcpSocket and exec"
        in run_probe(ProbeSpec.from_spec("livenessProbe", {"grpc": {"port": 1}}), target)[1]
    )


def test_a_probed_container_is_ready_only_when_its_probe_says_so() -> None:
    facts = PodFactsForStatus(pod_ip="127.1.0.5", host_ip="127.0.0.1", start_time="t0")
    main = [ContainerRecord(name="c", state=RUNNING, started_at="t0")]
    status = pod_status(
        [], main, "Running", facts, [], "t1", probes={"c": ProbeView(ready=False, started=True)}
    )
    assert status["containerStatuses"][0]["ready"] is False
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"
    status = pod_status(
        [], main, "Running", facts, [], "t1", probes={"c": ProbeView(ready=True, started=True)}
    )
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"


def test_api_server_address_is_loopback_only() -> None:
    address = ApiServerAddress.from_url("https://127.0.0.1:26403")
    env = address.environment()
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1" and env["KUBERNETES_SERVICE_PORT"] == "26403"
    # a documentation address (TEST-NET-3): refused before anything could dial it
    with pytest.raises(ValueError, match="loopback"):
        ApiServerAddress.from_url("https://203.0.113.7:443")


POD = {
    "metadata": {"name": "op-0", "namespace": "ns", "uid": "u-1", "labels": {"b": "2", "a": "1"}},
    "spec": {
        "serviceAccountName": "op",
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                ]
                            }
                        },
                    ]
                },
            },
            {
                "name": "info",
                "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
            },
            {"name": "scratch", "emptyDir": {}},
        ],
    },
}


def test_projected_volumes_hold_a_pod_bound_token_the_ca_and_the_namespace(tmp_path: Path) -> None:
    requests = []

    def request_token(*args: object) -> tuple[str, float]:
        requests.append(args)
        return "tok", 1000.0 + 3607

    def lookup(kind: str, name: str) -> dict | None:
        return {"data": {"ca.crt": "CA"}} if (kind, name) == ("ConfigMap", "kube-root-ca.crt") else None

    facts = PodFacts(pod_ip="127.1.0.5", host_ip="127.0.0.1", node_name="local-0")
    written = write_projected_volumes(POD, lambda name: tmp_path / name, facts, lookup, request_token)
    assert set(written.paths) == {"kube-api-access", "info"}
    volume = tmp_path / "kube-api-access"
    assert {p.name: p.read_text() for p in volume.iterdir()} == {
        "token": "tok",
        "ca.crt": "CA",
        "namespace": "ns",
    }
    assert (tmp_path / "info" / "labels").read_text() == 'a="1"\nb="2"'
    assert requests == [("ns", "op", "", 3607, "op-0", "u-1")]
    assert written.refresh_at is not None
    with pytest.raises(EnvConfigError, match=r"kube-root-ca\.crt"):
        write_projected_volumes(POD, lambda name: tmp_path / name, facts, lambda k, n: None, request_token)


def test_tokens_are_renewed_at_80_percent_of_their_life_at_most_a_day() -> None:
    assert refresh_time(0, 3600) == pytest.approx(2880)
    assert refresh_time(0, 10 * 86400) == 86400
