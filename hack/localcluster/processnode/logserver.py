"""The kubelet's container-log endpoint, so `kubectl logs [-f] [--previous]` works for our pods.

Why: `kubectl logs` asks the API server, which dials the node's kubelet endpoint (the Node's
``status.daemonEndpoints.kubeletEndpoint.Port`` at its InternalIP 127.0.0.1) at
``/containerLogs/<ns>/<pod>/<container>``. Like a kubelet, this server speaks TLS with a serving
certificate from the cluster CA (the API server checks it with ``--kubelet-certificate-authority``)
and authenticates clients by certificate: only the API server's kubelet-client identity is
authorised, so the endpoint never bypasses RBAC (a user reaches it only through ``pods/log``).

Only logs are served: ``exec``, ``attach`` and ``port-forward`` answer 404. It binds 127.0.0.1.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from localcluster.processnode.containerlogs import (
    LogQuery,
    LogQueryError,
    parse_query,
    read_run_offsets,
    select_range,
    tail_start,
)

log = logging.getLogger(__name__)

AUTHORISED_CLIENTS = frozenset({"kube-apiserver-kubelet-client"})
FOLLOW_POLL_SECONDS = 0.2
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class LogTarget:
    """A container's log file and whether its current run is still going."""

    path: Path
    running: Callable[[], bool]


Resolver = Callable[[str, str, str], LogTarget | None]


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    client_ca: Path


def _client_common_name(certificate: dict | None) -> str | None:
    for rdn in (certificate or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LogHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("kubelet endpoint: " + format, *args)

    def do_GET(self) -> None:
        name = _client_common_name(self.connection.getpeercert())  # type: ignore[attr-defined]
        if name not in AUTHORISED_CLIENTS:
            self._error(HTTPStatus.FORBIDDEN, f"client {name!r} may not read logs from this node")
            return
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._error(HTTPStatus.NOT_FOUND, "this node serves only /containerLogs/<ns>/<pod>/<container>")
            return
        try:
            query = parse_query(dict(parse_qsl(url.query)))
        except LogQueryError as error:
            self._error(HTTPStatus.BAD_REQUEST, str(error))
            return
        target = self.server.resolve(parts[1], parts[2], parts[3])
        if target is None:
            where = f"container {parts[3]} of pod {parts[1]}/{parts[2]}"
            self._error(HTTPStatus.NOT_FOUND, f"{where} is not on this node")
            return
        self._stream(target, query)

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, target: LogTarget, query: LogQuery) -> None:
        offsets = read_run_offsets(target.path)
        size = target.path.stat().st_size if target.path.exists() else 0
        chosen = select_range(offsets, size, query.previous)
        if chosen is None:
            self._error(HTTPStatus.BAD_REQUEST, "previous terminated container not found (no restart yet)")
            return
        start, end = chosen
        data = _read(target.path, start, end)
        if query.tail_lines is not None:
            data = data[tail_start(data, query.tail_lines) :]
        budget = query.limit_bytes
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            budget = self._chunk(data, budget)
            if query.follow:
                self._follow(target, end, len(offsets), budget)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return  # the client went away (kubectl logs -f interrupted)

    def _chunk(self, data: bytes, budget: int | None) -> int | None:
        if budget is not None:
            data, budget = data[:budget], budget - min(budget, len(data))
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        return budget

    def _follow(self, target: LogTarget, position: int, runs: int, budget: int | None) -> None:
        """Send what the current run appends until it ends (or the byte budget is spent)."""
        while budget is None or budget > 0:
            data = _read(target.path, position, position + CHUNK_BYTES)
            if data:
                position += len(data)
                budget = self._chunk(data, budget)
                continue
            if not target.running() or len(read_run_offsets(target.path)) != runs:
                if not _read(target.path, position, position + 1):
                    return
                continue
            time.sleep(FOLLOW_POLL_SECONDS)  # tail -f: poll the file for growth


def _read(path: Path, start: int, end: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            return handle.read(max(0, end - start))
    except OSError:
        return b""


class _LogHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, resolve: Resolver, tls: TLSFiles) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.resolve = resolve
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(tls.cert, tls.key)
        context.load_verify_locations(tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self.socket = context.wrap_socket(self.socket, server_side=True)


class KubeletLogServer:
    """Serves the log endpoint on 127.0.0.1:``port`` in a background thread until stopped."""

    def __init__(self, port: int, resolve: Resolver, tls: TLSFiles) -> None:
        self._server = _LogHTTPServer(port, resolve, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kubelet-logs", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        log.info("serving container logs on https://127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
