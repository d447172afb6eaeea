"""The operator's Kubernetes REST client: one aiohttp session, JSON in and out (issue 16).

Why our own: kubernetes_asyncio's `client` package imports 768 generated model modules (~36 MiB of
the operator's RSS), and the operator never wanted the models: it reads and writes plain camelCase
dicts, and its hot paths already bypassed the models. What the operator needs of a client is small,
and is all here:

- **Credentials from Kopf's own login functions** (service account in a pod, kubeconfig otherwise),
  so the operator and Kopf's watches connect the same way; a 401 logs in again once (a rotated
  service-account token) and repeats the request.
- **Every request carries a timeout** (issue 13 item 11): REQUEST_TIMEOUT_SECONDS unless the
  caller passes its own (a watch: no total, a read timeout instead). One half-open connection must
  never freeze a reconcile worker.
- **Errors are one exception**, `ApiError(status, reason, body)`, which callers turn into return
  values where an answer is normal (404, 409).
- **Every request is counted** through `on_request(verb, resource)` (the operator's request counter
  by verb and resource), which is how the requests a job costs over its life are found.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

if TYPE_CHECKING:
    import kopf

REQUEST_TIMEOUT_SECONDS = 30.0
"""Upper bound of one API call (connect + response); generous for a loaded API server."""
CONNECTION_LIMIT = 100
"""Connections open at once (kubernetes_asyncio's default, kept): watches hold one each."""
READ_BUFFER = 2**21
"""A watch event is one JSON line, up to etcd's 1.5 MiB request limit; aiohttp's default buffer
would refuse such a line."""
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

RequestCounter = Callable[[str, str], None]
"""Called with (verb, resource) for every request sent, e.g. ("POST", "jobs"),
("PATCH", "finetunejobs/status"), ("WATCH", "pods")."""
Timeout = float | aiohttp.ClientTimeout | None
Params = Mapping[str, str | int | bool | None]


class ApiError(Exception):
    """An error answer of the API server: HTTP status, reason phrase, and the body (a Status JSON)."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(status, reason, body)
        self.status = status
        self.reason = reason
        self.body = body

    def __str__(self) -> str:
        return f"({self.status}) {self.reason}: {self.body[:300]}"


def api_path(
    api_version: str,
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The URL path of a resource: `api_path("batch/v1", "jobs", "ns", "j")` ->
    "/apis/batch/v1/namespaces/ns/jobs/j"; "v1" (no group) is the core API under /api."""
    parts = ["api", api_version] if "/" not in api_version else ["apis", *api_version.split("/")]
    if namespace is not None:
        parts += ["namespaces", namespace]
    parts.append(resource)
    if name is not None:
        parts.append(name)
        if subresource is not None:
            parts.append(subresource)
    return "/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def request_resource(url: str) -> str:
    """The resource (and subresource) a request URL addresses: `.../namespaces/ns/pods/p/status` ->
    "pods/status"; cluster-scoped and all-namespace paths alike."""
    parts = urllib.parse.urlsplit(url).path.strip("/").split("/")
    # /api/v1/... or /apis/<group>/<version>/...
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "?"
    return f"{rest[0]}/{rest[2]}" if len(rest) > 2 else rest[0]


def query(params: Params | None) -> dict[str, str]:
    """Query parameters as the API server reads them: booleans as "true"/"false", None left out."""
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in (params or {}).items()
        if value is not None
    }


def client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """A caller's timeout (seconds or a ClientTimeout), else the default, read at call time."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    return aiohttp.ClientTimeout(total=timeout or REQUEST_TIMEOUT_SECONDS)


Login = Callable[[], "kopf.ConnectionInfo"]


def in_cluster_server(environ: Mapping[str, str]) -> str:
    """The API server's address in a pod, as client-go's InClusterConfig finds it: from
    KUBERNETES_SERVICE_HOST/PORT, which the kubelet sets, not the DNS name kubernetes.default.svc,
    which a hostNetwork pod (or one with its own DNS policy) may not resolve."""
    host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT") or "443"
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def login() -> kopf.ConnectionInfo:
    """Kopf's built-in logins: the pod's service account when in a cluster (and no KUBECONFIG is
    set), the current kubeconfig context otherwise. Kopf is imported here, not at module import,
    so the pure helpers above stay cheap to import."""
    import kopf

    settings = kopf.OperatorSettings()
    info: kopf.ConnectionInfo | None = None
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        info = kopf.login_with_service_account(settings=settings)
        if info is not None:
            info = dataclasses.replace(info, server=in_cluster_server(os.environ))
    if info is None:
        info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig: cannot reach the API server")
    return info


class RestClient:
    """An async Kubernetes API client over one aiohttp session; see the module docstring."""

    on_request: RequestCounter | None = None

    def __init__(self, info: kopf.ConnectionInfo, relogin: Login | None = None) -> None:
        self.server = info.server.rstrip("/")
        self.relogin = relogin
        self._headers = info.as_http_headers()
        self.ssl_context = info.as_ssl_context()
        """Kopf's own, from the same fields: CA, client certificate, insecure-skip-tls-verify."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT, ssl=self.ssl_context),
            proxy=info.proxy_url,
            trust_env=info.trust_env,
            read_bufsize=READ_BUFFER,
        )

    @classmethod
    def connect(cls, log_in: Login = login) -> RestClient:
        """A client with the credentials `log_in` finds, which it also uses to log in again on a 401."""
        return cls(log_in(), relogin=log_in)

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = JSON,
        request_timeout: Timeout = None,
        parse: bool = True,
    ) -> Any:
        """One call; the answer's JSON (None with `parse=False`, when the caller does not need it).

        Raises ApiError on an error answer, TimeoutError past `request_timeout` (by default
        REQUEST_TIMEOUT_SECONDS)."""
        response = await self.open(
            method, path, params=params, body=body, content_type=content_type, request_timeout=request_timeout
        )
        try:
            data = await response.read()
        finally:
            response.release()
        return orjson.loads(data) if parse and data else None

    async def open(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        content_type: str = JSON,
        request_timeout: Timeout = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response unread (a watch is read line by line); the caller
        releases it. Raises ApiError on an error answer (its body read and released here)."""
        arguments = query(params)
        if self.on_request is not None:
            verb = "WATCH" if arguments.get("watch") == "true" else method
            self.on_request(verb, request_resource(path))
        data = None if body is None else orjson.dumps(body)
        response = await self._send(method, path, arguments, data, content_type, request_timeout)
        if response.status == 401 and self.relogin is not None:
            response.release()
            self._headers = self.relogin().as_http_headers()  # a rotated token: read it again
            response = await self._send(method, path, arguments, data, content_type, request_timeout)
        if response.status >= 400:
            try:
                text = (await response.read()).decode(errors="replace")
            finally:
                response.release()
            raise ApiError(response.status, response.reason or "", text)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        data: bytes | None,
        content_type: str,
        request_timeout: Timeout,
    ) -> aiohttp.ClientResponse:
        headers = {**self._headers, "Accept": JSON}
        if data is not None:
            headers["Content-Type"] = content_type
        return await self.session.request(
            method,
            self.server + path,
            params=params,
            data=data,
            headers=headers,
            timeout=client_timeout(request_timeout),
        )
