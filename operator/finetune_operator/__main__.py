"""`python -m finetune_operator` / `finetune-operator`: run the operator until SIGINT or SIGTERM.

Peering is on by default (docs/architecture.md "Peering": one active replica; a second one waits),
`--standalone`
is for development. See docs/operator.md for every flag and environment variable.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import kopf

from finetune_operator.logs import configure_logging
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> int:
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
