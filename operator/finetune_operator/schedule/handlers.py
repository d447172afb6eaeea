"""Kopf wiring of FineTuneSchedules: watches add schedule keys to the schedule controller's queue.

Like ../handlers.py only `@kopf.on.event` is used (no finalizer, no progress annotations): a
schedule's own events add its key, and so does every event of a FineTuneJob labelled
finetune.dev/schedule (a run started, finished or was deleted). Imported by ``finetune_operator.__main__``
next to the FineTuneJob handlers.
"""

import logging
import os
from pathlib import Path
from typing import Any

import kopf

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_api.schedule import LABEL_SCHEDULE, SCHEDULE_PLURAL
from finetune_operator.kube import Kube, load_client_config
from finetune_operator.reconcile_pool import route_watch_event
from finetune_operator.schedule.api import ScheduleApi
from finetune_operator.schedule.clock import FAKE_CLOCK_ENV, clock_from_env
from finetune_operator.schedule.controller import ScheduleController

logger = logging.getLogger("finetune_operator.schedule")


def _controller(memo: Any) -> ScheduleController | None:
    return getattr(memo, "schedule_controller", None)


@kopf.on.startup()
async def start_schedule_controller(memo: Any, **_: Any) -> None:
    settings = getattr(memo, "operator_settings", None)
    api_client = await load_client_config()
    clock_path = os.environ.get(FAKE_CLOCK_ENV)
    if clock_path:
        logger.warning(
            "%s is set: schedules follow the time in %s (a test-only knob)", FAKE_CLOCK_ENV, clock_path
        )
    controller = ScheduleController(
        ScheduleApi(api_client),
        Kube(api_client),
        clock_from_env(),
        reconcile_workers=max(1, min(4, settings.reconcile_workers)),
        resync_seconds=float(getattr(settings, "resync_seconds", 60.0)),
        clock_file=Path(clock_path) if clock_path else None,
    )
    controller.start()
    memo.schedule_controller = controller
    memo.schedule_api_client = api_client


@kopf.on.cleanup()
async def stop_schedule_controller(memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        await controller.stop()
        await memo.schedule_api_client.close()


@kopf.on.event(GROUP, VERSION, SCHEDULE_PLURAL)
async def finetuneschedule_event(
    event: dict[str, Any], name: str, namespace: str, memo: Any, **_: Any
) -> None:
    route_watch_event(_controller(memo), event, (namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL, labels={LABEL_SCHEDULE: kopf.PRESENT})
async def scheduled_run_event(labels: dict[str, str], namespace: str, memo: Any, **_: Any) -> None:
    controller = _controller(memo)
    if controller is not None:
        controller.enqueue((namespace, labels[LABEL_SCHEDULE]))
