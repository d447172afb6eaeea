"""The operator process loads no Kubernetes client library (issue 16, RSS): it has its own REST
client (rest.py), and Kopf's optional imports of the others are made to fail fast."""

from __future__ import annotations

import subprocess
import sys


def test_the_operator_imports_and_kopf_runs_without_any_kubernetes_client_library():
    code = (
        "import sys\n"
        "from finetune_operator.__main__ import skip_unused_clients\n"
        "skip_unused_clients()\n"
        "import kopf\n"
        "import finetune_operator.job.handlers, finetune_operator.sweep.handlers\n"
        "import finetune_operator.schedule.handlers\n"
        "loaded = [n for n in ('kubernetes', 'kubernetes_asyncio', 'pykube') if sys.modules.get(n)]\n"
        "assert not loaded, f'imported: {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
