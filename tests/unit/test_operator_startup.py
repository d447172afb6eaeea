"""The operator process leaves out the sync Kubernetes clients Kopf would import (issue 16, RSS)."""

from __future__ import annotations

import subprocess
import sys


def test_kopf_runs_without_the_sync_client_in_the_operator_process():
    code = (
        "import sys\n"
        "from finetune_operator.__main__ import skip_unused_clients\n"
        "skip_unused_clients()\n"
        "import kopf\n"
        "assert sys.modules.get('kubernetes') is None, 'the sync client was imported'\n"
        "import kubernetes_asyncio.client\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
