"""Kopf wiring of FineTuneSweeps: watches add sweep keys to the sweep controller's queue.

Like ../job/handlers.py only `@kopf.on.event` is used (no finalizer, no progress annotations): a
sweep's own events add its key, and so does every event of a FineTuneJob labelled
finetune.dev/sweep (a trial started, reported an evaluation, finished or was deleted), which is how
each new evaluation reaches the pruner within one pass. Imported by ``finetune_operator.__main__``.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_api.sweep import LABEL_SWEEP, SWEEP_PLURAL
from finetune_operator.kube import Kube, load_client_config
from finetune_operator.reconcile_pool import route_watch_event
from finetune_operator.sweep.api import SweepApi
from finetune_operator.sweep.controller import SweepController
from finetune_operator.sweep.metrics import SweepMetrics

logger = logging.getLogger("finetune_operator.sweep")


def _controller(memo: Any) -> SweepController | None:
    return getattr(memo, "sweep_controller", None)


@kopf.on.startup()
async def start_sweep_controller(memo: Any, **_: Any) -> None:
    settings = getattr(memo, "operator_settings", None)
    api_client = await load_client_config()
    registry = getattr(getattr(memo, "metrics", None), "registry", None)
    controller = SweepController(
        SweepApi(api_client),
        Kube(api_client),
        SweepMetrics(registry) if registry is not None else None,
        reconcile_workers=max(1, min(4, settings.reconcile_workers)),
        resync_seconds=float(getattr(settings, "resync_seconds", 60.0)),
    )
    controller.start()
    memo.sweep_controller = controller
    memo.sweep_api_client = api_client


@kopf.on.cleanup()
async def stop_sweep_controller(memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        await controller.stop()
        await memo.sweep_api_client.close()


@kopf.on.event(GROUP, VERSION, SWEEP_PLURAL)
async def finetunesweep_event(event: dict[str, Any], name: str, namespace: str, memo: Any, **_: Any) -> None:
    route_watch_event(_controller(memo), event, (namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL, labels={LABEL_SWEEP: kopf.PRESENT})
async def trial_event(labels: dict[str, str], namespace: str, memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        controller.enqueue((namespace, labels[LABEL_SWEEP]))
