"""The operator's own REST client (rest.py): paths, query strings, errors, credentials, timeouts and
the request counter, against an in-process HTTP server (the real API server is
tests/integration/test_operator_cache.py and every operator integration test)."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from finetune_operator import informer as informer_module
from finetune_operator import rest
from finetune_operator.informer import Informer, Scope, WatchExpired
from finetune_operator.kube import Kube
from finetune_operator.rest import ApiError, RestClient, api_path, query, request_resource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler, token: str = "t0", **client: Any) -> AsyncIterator[RestClient]:
    """A RestClient talking to `handler`, served on a free local port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    api = RestClient(kopf.ConnectionInfo(server=f"http://{host}:{port}/", token=token), **client)
    try:
        yield api
    finally:
        await api.close()
        await runner.cleanup()


def test_paths_of_core_group_namespaced_cluster_and_subresource_objects():
    assert api_path("v1", "pods", "ns") == "/api/v1/namespaces/ns/pods"
    assert api_path("v1", "pods") == "/api/v1/pods"
    assert api_path("batch/v1", "jobs", "ns", "j") == "/apis/batch/v1/namespaces/ns/jobs/j"
    assert (
        api_path("finetune.dev/v1alpha1", "finetunejobs", "ns", "j", "status")
        == "/apis/finetune.dev/v1alpha1/namespaces/ns/finetunejobs/j/status"
    )
    assert (
        api_path("kopf.dev/v1", "clusterkopfpeerings", None, "p") == "/apis/kopf.dev/v1/clusterkopfpeerings/p"
    )
    assert api_path("v1", "configmaps", "ns", "a/b") == "/api/v1/namespaces/ns/configmaps/a%2Fb"


def test_kube_lists_each_kind_of_child_at_its_collection():
    kube = Kube(None)  # type: ignore[arg-type]  # list_path does no I/O
    assert kube.list_path("jobs", "ns") == "/apis/batch/v1/namespaces/ns/jobs"
    assert kube.list_path("pods", None) == "/api/v1/pods"
    assert kube.list_path("configmaps", "ns") == "/api/v1/namespaces/ns/configmaps"


@pytest.mark.parametrize(
    ("url", "resource"),
    [
        ("/api/v1/namespaces/ns/pods/p/status", "pods/status"),
        ("/api/v1/namespaces/ns/pods", "pods"),
        ("/api/v1/pods", "pods"),
        ("https://h:6443/apis/batch/v1/namespaces/ns/jobs/j", "jobs"),
        ("/apis/finetune.dev/v1alpha1/namespaces/ns/finetunejobs/j/status", "finetunejobs/status"),
        ("/apis/kopf.dev/v1/clusterkopfpeerings/p", "clusterkopfpeerings"),
        ("/api/v1/namespaces/ns", "namespaces"),
        ("/api/v1", "?"),
    ],
)
def test_the_resource_a_request_addresses(url, resource):
    assert request_resource(url) == resource


def test_query_parameters_as_the_api_server_reads_them():
    assert query({"watch": True, "allowWatchBookmarks": False, "limit": 500, "continue": None}) == {
        "watch": "true",
        "allowWatchBookmarks": "false",
        "limit": "500",
    }
    assert query(None) == {}


def test_an_error_keeps_status_reason_and_body():
    error = ApiError(409, "Conflict", '{"message": "exists"}')
    assert (error.status, error.reason, error.body) == (409, "Conflict", '{"message": "exists"}')
    assert "409" in str(error) and "exists" in str(error)


def test_the_default_timeout_is_read_at_call_time_and_a_callers_own_wins(monkeypatch):
    monkeypatch.setattr(rest, "REQUEST_TIMEOUT_SECONDS", 3.0)
    assert rest.client_timeout(None).total == 3.0
    assert rest.client_timeout(7).total == 7
    watch = aiohttp.ClientTimeout(total=None, sock_read=90)
    assert rest.client_timeout(watch) is watch


def test_credentials_from_a_connection_info():
    async def scenario() -> None:
        plain = RestClient(kopf.ConnectionInfo(server="https://h", token="abc"))
        basic = RestClient(kopf.ConnectionInfo(server="https://h", username="u", password="p"))
        insecure = RestClient(kopf.ConnectionInfo(server="https://h", insecure=True))
        try:
            assert plain._headers == {"Authorization": "Bearer abc"}
            assert basic._headers["Authorization"].startswith("Basic ")
            assert plain.ssl_context.verify_mode == ssl.CERT_REQUIRED and plain.ssl_context.check_hostname
            assert insecure.ssl_context.verify_mode == ssl.CERT_NONE
        finally:
            for api in (plain, basic, insecure):
                await api.close()

    asyncio.run(scenario())


def test_login_reads_the_kubeconfig_outside_a_pod(monkeypatch, tmp_path: Path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "tok"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.9")  # KUBECONFIG set: the kubeconfig wins
    info = rest.login()
    assert (info.server, info.token) == ("https://127.0.0.1:6443", "tok")


def test_requests_send_json_parse_json_and_are_counted():
    seen: list[tuple[str, str, dict[str, str], str | None, str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append(
            (
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Content-Type"),
                request.headers["Authorization"],
                body,
            )
        )
        return web.json_response({"items": [{"metadata": {"name": "a"}}]})

    counted: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with serving(handler) as api:
            api.on_request = lambda verb, resource: counted.append((verb, resource))
            found = await api.request("GET", "/api/v1/namespaces/ns/pods", params={"labelSelector": "a=b"})
            assert found["items"][0]["metadata"]["name"] == "a"
            patched = await api.request(
                "PATCH",
                "/apis/finetune.dev/v1alpha1/namespaces/ns/finetunejobs/j/status",
                body={"status": {}},
                content_type=rest.MERGE_PATCH,
                parse=False,
            )
            assert patched is None
            watch = await api.open("GET", "/api/v1/pods", params={"watch": True})
            watch.release()

    asyncio.run(scenario())
    assert seen[0] == ("GET", "/api/v1/namespaces/ns/pods", {"labelSelector": "a=b"}, None, "Bearer t0", None)
    assert seen[1][3:] == (rest.MERGE_PATCH, "Bearer t0", {"status": {}})
    assert counted == [("GET", "pods"), ("PATCH", "finetunejobs/status"), ("WATCH", "pods")]


def test_an_error_answer_raises_api_error_with_the_servers_words():
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "message": 'jobs.batch "j" not found'}, status=404)

    async def scenario() -> ApiError:
        async with serving(handler) as api:
            with pytest.raises(ApiError) as raised:
                await api.request("GET", "/apis/batch/v1/namespaces/ns/jobs/j")
            assert await Kube(api).config_map_owner_uids("ns", "j") is None  # 404 -> None
            return raised.value

    error = asyncio.run(scenario())
    assert (error.status, error.reason) == (404, "Not Found")
    assert json.loads(error.body)["message"] == 'jobs.batch "j" not found'


def test_every_request_has_a_timeout_unless_the_caller_sets_its_own(monkeypatch):
    monkeypatch.setattr(rest, "REQUEST_TIMEOUT_SECONDS", 0.2)

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.json_response({})

    async def scenario() -> None:
        async with serving(handler) as api:
            with pytest.raises(TimeoutError):
                await api.request("GET", "/api/v1/pods")
            assert await api.request("GET", "/api/v1/pods", request_timeout=5) == {}

    asyncio.run(scenario())


def test_a_401_logs_in_again_once_and_repeats_the_request():
    logins: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        if request.headers["Authorization"] != "Bearer fresh":
            return web.json_response({"message": "Unauthorized"}, status=401)
        return web.json_response({"ok": True})

    def relogin() -> kopf.ConnectionInfo:
        logins.append("again")
        return kopf.ConnectionInfo(server="http://unused", token="fresh")

    async def scenario() -> None:
        async with serving(handler, token="expired", relogin=relogin) as api:
            assert await api.request("GET", "/api/v1/pods") == {"ok": True}
            assert await api.request("GET", "/api/v1/pods") == {"ok": True}

    asyncio.run(scenario())
    assert logins == ["again"]


def pod(name: str, version: str) -> dict[str, Any]:
    labels = {"finetune.dev/job-name": "j"}
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels}}


def test_the_informer_lists_in_pages_then_watches_from_the_lists_version(monkeypatch):
    monkeypatch.setattr(informer_module, "WATCH_SERVER_TIMEOUT_SECONDS", (7, 7))
    queries: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        queries.append(dict(request.query))
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(json.dumps({"type": "ADDED", "object": pod("c", "12")}).encode() + b"\n")
            bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}
            await response.write(json.dumps(bookmark).encode() + b"\n")
            return response  # the server ends the watch
        if request.query.get("continue") == "next":
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": [pod("b", "9")]})
        return web.json_response({"metadata": {"continue": "next"}, "items": [pod("a", "8")]})

    async def scenario() -> Informer:
        async with serving(handler) as api:
            scope = Scope("ns", api, "/api/v1/namespaces/ns/pods")
            cache = Informer("pods", [scope], "managed=yes", lambda *_: None)
            cache.resource_versions["ns"] = await cache.relist(scope)
            await cache.watch(scope)
            return cache

    cache = asyncio.run(scenario())
    assert sorted(obj["metadata"]["name"] for obj in cache) == ["a", "b", "c"]
    assert cache.resource_versions["ns"] == "15"
    assert queries[0] == {"labelSelector": "managed=yes", "limit": "500"}
    assert queries[1] == {"labelSelector": "managed=yes", "limit": "500", "continue": "next"}
    assert queries[2] == {
        "labelSelector": "managed=yes",
        "watch": "true",
        "allowWatchBookmarks": "true",
        "resourceVersion": "10",
        "timeoutSeconds": "7",
    }


def test_a_410_gone_on_list_or_watch_is_watch_expired():
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 410, "message": "too old"}, status=410)

    async def scenario() -> None:
        async with serving(handler) as api:
            scope = Scope("ns", api, "/api/v1/namespaces/ns/pods")
            cache = Informer("pods", [scope], "managed=yes", lambda *_: None)
            with pytest.raises(WatchExpired):
                await cache.relist(scope)
            cache.resource_versions["ns"] = "1"
            with pytest.raises(WatchExpired):
                await cache.watch(scope)

    asyncio.run(scenario())


def test_in_a_pod_the_api_server_is_where_the_kubelet_says(monkeypatch, tmp_path: Path):
    assert rest.in_cluster_server({"KUBERNETES_SERVICE_HOST": "127.0.0.9"}) == "https://127.0.0.9:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert rest.in_cluster_server(v6) == "https://[fd00::1]:6443"
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    real_exists = rest.os.path.exists

    def exists(path: str) -> bool:  # the service account files, at the paths Kopf reads
        return path.endswith("/serviceaccount/token") or real_exists(path)

    real_open = open

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        return real_open(token if str(path).endswith("/serviceaccount/token") else path, *args, **kwargs)

    monkeypatch.setattr("os.path.exists", exists)
    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "27401")
    info = rest.login()
    assert (info.server, info.token) == ("https://127.0.0.1:27401", "sa-token")


def test_an_event_lost_on_a_dropped_connection_fails_no_pass():
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # the connection drops before any answer
        return web.Response()

    async def scenario() -> None:
        async with serving(handler) as api:
            job = {"metadata": {"name": "j", "namespace": "ns", "uid": "u"}}
            now = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
            await Kube(api).post_event(job, "Normal", "AttemptCreated", "attempt 1", now)  # no raise

    asyncio.run(scenario())
