"""Kopf wiring: the FineTuneJob watch feeds the controller; nothing else happens here.

Only `@kopf.on.event` handlers are used (plus startup/cleanup): they need no finalizer and store no
progress annotations on the FineTuneJob, so deleting a job never waits for the operator and the
operator never writes anything but status. Timers would add a finalizer per object (Kopf needs one
to stop them); the controller's own per-key timers replace them.

The children (Jobs, pods, Services, ConfigMaps) are not watched through Kopf: Kopf's `labels=`
filter runs on the client, after every pod and Job of the cluster has crossed the wire. The
controller's own informers (job/cache.py) watch them with a server-side label selector and queue
the owning job themselves (issue 16).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_operator.job.controller import Controller
from finetune_operator.kube import Kube, load_client_config
from finetune_operator.metrics import OperatorMetrics
from finetune_operator.rest import login
from finetune_operator.settings import Settings

logger = logging.getLogger("finetune_operator")


class EventHandlersOnlyDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf computes a "diff base" (a deep copy of the object, minus system fields) on every event,
    for on.create/on.update handlers. The operator has only on.event handlers (jobs, schedules,
    sweeps), which never read it, and at a thousand jobs the deep copies were one of the operator's
    largest CPU costs (issue 16). Nothing is ever stored (no annotation is written either way)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return kopf.BodyEssence()


def _controller(memo: Any) -> Controller | None:
    return getattr(memo, "controller", None)


@kopf.on.login()
def login_as_the_operator(**_: Any) -> kopf.ConnectionInfo:
    """Kopf connects exactly as the operator's own client (rest.login): in a pod, to the address in
    KUBERNETES_SERVICE_HOST/PORT, where Kopf's own service-account login would dial
    kubernetes.default.svc. Kopf calls this again when the API answers 401 (a rotated token)."""
    return login()


@kopf.on.startup()
async def start_controller(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    operator_settings: Settings = memo.operator_settings
    settings.posting.enabled = False  # our Events are posted by the controller, after status writes
    settings.persistence.diffbase_storage = EventHandlersOnlyDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 30  # Kopf's own calls (peering, listing): never hang
    settings.networking.connect_timeout = 10
    settings.networking.error_backoffs = [1, 2, 5, 10]
    metrics: OperatorMetrics = memo.metrics
    api = await load_client_config()
    api.on_request = metrics.count_request
    kube = Kube(api)
    if not operator_settings.standalone:
        await kube.ensure_peering(operator_settings.peering_name, operator_settings.namespaces)
    metrics.serve(operator_settings.metrics_port, operator_settings.metrics_bind_address)
    controller = Controller(operator_settings, kube, metrics)
    await controller.start()  # returns once the child cache is filled: no pass decides on a partial view
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
async def finetunejob_event(event: dict[str, Any], memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        controller.on_finetunejob_event(event)
