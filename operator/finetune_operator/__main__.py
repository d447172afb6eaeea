"""`python -m finetune_operator` / `finetune-operator`: run the operator until SIGINT or SIGTERM.

Peering is on by default (docs/architecture.md "Peering": one active replica; a second one waits),
`--standalone`
is for development. See docs/operator.md for every flag and environment variable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Sequence

from finetune_operator.logs import configure_logging
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.settings import parse_settings

UNUSED_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")
"""Kubernetes client libraries the operator never uses (it has its own, rest.py). Kopf imports them
when installed, only to recognise their objects and to offer their logins; their generated models
cost ~7 MiB (kubernetes) and ~36 MiB (kubernetes_asyncio) of RSS (issue 16). Blocked, Kopf logs in
with its own kubeconfig / service-account login, as rest.py does. Tests may have them installed;
the operator's image does not."""


def skip_unused_clients() -> None:
    """Make Kopf's optional imports of these clients fail fast, unless something loaded one."""
    for name in UNUSED_CLIENTS:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            sys.modules[name] = None  # type: ignore[assignment]  # "import kubernetes" -> ImportError


def main(argv: Sequence[str] | None = None) -> int:
    skip_unused_clients()
    import kopf

    try:
        settings = parse_settings(argv)
    except ValueError as error:
        print(f"finetune-operator: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    from finetune_operator.job import handlers  # noqa: F401  (registers the Kopf handlers)
    from finetune_operator.schedule import handlers as schedule_handlers  # noqa: F401  (FineTuneSchedule handlers)
    from finetune_operator.sweep import handlers as sweep_handlers  # noqa: F401  (FineTuneSweep handlers)

    memo = kopf.Memo(operator_settings=settings, metrics=OperatorMetrics())
    asyncio.run(
        kopf.operator(
            clusterwide=settings.all_namespaces,
            namespaces=list(settings.namespaces),
            standalone=settings.standalone or None,
            peering_name=None if settings.standalone else settings.peering_name,
            liveness_endpoint=settings.liveness_endpoint or None,
            memo=memo,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
