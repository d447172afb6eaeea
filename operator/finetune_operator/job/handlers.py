"""Kopf wiring: watches feed job keys into the controller's work queue; nothing else happens here.

Only `@kopf.on.event` handlers are used (plus startup/cleanup): they need no finalizer and store no
progress annotations on the FineTuneJob, so deleting a job never waits for the operator and the
operator never writes anything but status. Timers would add a finalizer per object (Kopf needs one
to stop them); the controller's own per-key timers replace them.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_operator import naming
from finetune_operator.job.controller import Controller
from finetune_operator.kube import Kube, load_client_config
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.reconcile_pool import route_watch_event
from finetune_operator.settings import Settings

logger = logging.getLogger("finetune_operator")

MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}


def _controller(memo: Any) -> Controller | None:
    return getattr(memo, "controller", None)


@kopf.on.startup()
async def start_controller(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    operator_settings: Settings = memo.operator_settings
    settings.posting.enabled = False  # our Events are posted by the controller, after status writes
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.error_backoffs = [1, 2, 5, 10]
    kube = Kube(await load_client_config())
    if not operator_settings.standalone:
        await kube.ensure_peering(operator_settings.peering_name, operator_settings.namespaces)
    metrics: OperatorMetrics = memo.metrics
    metrics.serve(operator_settings.metrics_port, operator_settings.metrics_bind_address)
    controller = Controller(operator_settings, kube, metrics)
    controller.start()
    memo.controller = controller
    logger.info(
        "operator ready",
        extra={"namespace": ",".join(operator_settings.namespaces) or "*", "result": "ready"},
    )


@kopf.on.cleanup()
async def stop_controller(memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        await controller.stop()
        await controller.kube.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def finetunejob_event(event: dict[str, Any], name: str, namespace: str, memo: Any, **_: Any) -> None:
    route_watch_event(_controller(memo), event, (namespace, name))


def _enqueue_owner(labels: dict[str, str], namespace: str, memo: Any) -> None:
    controller = _controller(memo)
    owner = labels.get(naming.LABEL_JOB_NAME)
    if controller is not None and owner:
        controller.enqueue((namespace, owner))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def attempt_job_event(labels: dict[str, str], namespace: str, memo: Any, **_: Any) -> None:
    _enqueue_owner(labels, namespace, memo)


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def worker_pod_event(labels: dict[str, str], namespace: str, memo: Any, **_: Any) -> None:
    _enqueue_owner(labels, namespace, memo)
