"""The operator's scrape of rank 0 treats the pod's answer as untrusted (issue 13 item 5), tested
against a real pod on the process node that answers a redirect on one port (to a "secret" page
that would parse as metrics) and streams an endless body on another."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from finetune_operator.job.progress.poller import (
    MAX_BODY_BYTES,
    ProgressPoller,
    ScrapeRefused,
    fetch_metrics_text,
    metrics_url,
)
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster

REDIRECT_PORT, FLOOD_PORT = 9090, 9091
EVIL_SERVER = textwrap.dedent(
    """
    import http.server, os, threading
    ip = os.environ["POD_IP"]

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/secret":
                body = b"finetune_trainer_step 999\\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(302)
            self.send_header("Location", f"http://{ip}:9090/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Flood(Redirect):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            chunk = b"finetune_trainer_step 1\\n" * 4096
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    flood = http.server.ThreadingHTTPServer((ip, 9091), Flood)
    threading.Thread(target=flood.serve_forever, daemon=True).start()
    http.server.ThreadingHTTPServer((ip, 9090), Redirect).serve_forever()
    """
)


def evil_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evil-rank0"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": {"finetune.dev/process-node": "true"},
            "tolerations": [
                {"key": "finetune.dev/process-node", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "ignored",
                    "command": ["python", "-c", EVIL_SERVER],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                }
            ],
        },
    }


def listening(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def test_no_redirect_is_followed_and_no_more_than_1_mib_is_read(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, evil_pod())

    def serving() -> str | None:
        pod = core_v1.read_namespaced_pod("evil-rank0", namespace)
        ip = pod.status.pod_ip
        if (
            pod.status.phase == "Running"
            and ip
            and listening(ip, REDIRECT_PORT)
            and listening(ip, FLOOD_PORT)
        ):
            return ip
        return None

    ip = wait_until(serving, 120, "the evil pod to listen on both ports")

    async def scenario() -> None:
        with pytest.raises(ScrapeRefused, match="HTTP 302"):
            await fetch_metrics_text(metrics_url(ip, REDIRECT_PORT), 5)
        started = time.monotonic()
        with pytest.raises(ScrapeRefused, match=f"more than {MAX_BODY_BYTES} bytes"):
            await fetch_metrics_text(metrics_url(ip, FLOOD_PORT), 30)
        assert time.monotonic() - started < 30  # abandoned at the cap, not at the timeout

        # Through the poller both are one failed scrape each; nothing from /secret is ever absorbed.
        poller = ProgressPoller(interval_seconds=1, max_backoff_seconds=1)
        now = datetime.now(UTC)
        redirected = await poller.refresh(("ns", "redirect"), metrics_url(ip, REDIRECT_PORT), now)
        flooded = await poller.refresh(("ns", "flood"), metrics_url(ip, FLOOD_PORT), now)
        assert redirected.failures == 1 and redirected.sample is None
        assert flooded.failures == 1 and flooded.sample is None

    asyncio.run(scenario())
