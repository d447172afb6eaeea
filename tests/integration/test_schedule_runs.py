"""FineTuneSchedules driven by the real operator process, with its clock in a file the test rewrites
(FINETUNE_OPERATOR_FAKE_CLOCK_FILE), so nights pass in milliseconds and nothing waits for minutes.

The runs' template has runPolicy.suspend: true, so the FineTuneJob operator keeps each run without
starting pods (phase Suspended, i.e. active); a test finishes a run by writing the Succeeded or
Failed condition to its status, as the FineTuneJob operator would.
"""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from finetune_api.constants import GROUP, PLURAL, VERSION
from finetune_api.schedule import SCHEDULE_PLURAL
from finetune_operator.schedule.clock import FAKE_CLOCK_ENV
from localcluster.operator_process import OperatorProcess
from localcluster.waiting import wait_until

pytestmark = pytest.mark.cluster

WAIT = 30.0
UTC = dt.UTC
JOB_SPEC = {
    "image": "finetune-trainer:test",
    "model": {"uri": "file:///models/minilm", "task": "sequence-classification", "numLabels": 2},
    "dataset": {"train": "file:///data/${scheduledDate}/train.jsonl"},
    "output": {"uri": "file:///models/${jobName}"},
    "runPolicy": {"suspend": True},
}


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Schedules:
    """The test's FineTuneSchedules, their runs, and the operator's clock."""

    def __init__(self, api_client: client.ApiClient, namespace: str, clock_file: Path):
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.clock_file = clock_file
        # A day after the real now, on the hour: later than every creationTimestamp of the test.
        real = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.base = real + dt.timedelta(days=1)
        self.set_clock(self.base)

    def set_clock(self, moment: dt.datetime) -> None:
        self.clock_file.write_text(rfc3339(moment) + "\n")

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FineTuneSchedule",
            "metadata": {"name": name},
            "spec": {"schedule": "*/10 * * * *", "jobTemplate": {"spec": JOB_SPEC}, **spec},
        }
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, SCHEDULE_PLURAL, body
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, SCHEDULE_PLURAL, name)

    def patch_spec(self, name: str, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, SCHEDULE_PLURAL, name, {"spec": spec}
        )

    def runs(self, name: str, *, present_only: bool = True) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, label_selector=f"finetune.dev/schedule={name}"
        )["items"]
        if present_only:
            items = [i for i in items if not i["metadata"].get("deletionTimestamp")]
        return sorted(items, key=lambda i: i["metadata"]["annotations"]["finetune.dev/scheduled-time"])

    def scheduled_times(self, name: str) -> list[str]:
        return [r["metadata"]["annotations"]["finetune.dev/scheduled-time"] for r in self.runs(name)]

    def wait_times(self, name: str, expected: list[str]) -> None:
        wait_until(
            lambda: self.scheduled_times(name) == expected,
            WAIT,
            f"runs of {name} scheduled at {expected} (have {self.scheduled_times(name)})",
        )

    def wait_run(self, name: str, moment: dt.datetime) -> dict[str, Any]:
        """Wait for the run scheduled at `moment` and return it."""
        when = rfc3339(moment)

        def probe() -> dict[str, Any] | None:
            runs = self.runs(name)
            return next(
                (r for r in runs if r["metadata"]["annotations"]["finetune.dev/scheduled-time"] == when), None
            )

        return wait_until(probe, WAIT, f"the run of {name} scheduled at {when}")

    def wait_status(self, name: str, what: str, check) -> dict[str, Any]:
        def probe():
            status = self.get(name).get("status") or {}
            return status if check(status) else None

        return wait_until(probe, WAIT, f"FineTuneSchedule {name}: {what}")

    def wait_seen(self, name: str, moment: dt.datetime) -> dict[str, Any]:
        """Wait until the operator computed the next run after `moment` (so it saw that time)."""
        return self.wait_status(
            name,
            f"nextScheduleTime after {rfc3339(moment)}",
            lambda s: s.get("nextScheduleTime", "") > rfc3339(moment),
        )

    def finish(self, run: dict[str, Any], outcome: str) -> None:
        now = rfc3339(dt.datetime.now(UTC))
        status = {
            "phase": outcome,
            "completionTime": now,
            "conditions": [
                {
                    "type": outcome,
                    "status": "True",
                    "reason": "Test",
                    "message": "set by the test",
                    "lastTransitionTime": now,
                }
            ],
        }
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, run["metadata"]["name"], {"status": status}
        )

    def event_reasons(self, name: str) -> list[str]:
        selector = f"involvedObject.name={name},involvedObject.kind=FineTuneSchedule"
        return [
            e.reason for e in self.core.list_namespaced_event(self.namespace, field_selector=selector).items
        ]


@pytest.fixture
def schedules(api_client, namespace, tmp_path) -> Schedules:
    return Schedules(api_client, namespace, tmp_path / "clock")


@pytest.fixture
def scheduler(cluster, crds_installed, namespace, schedules) -> OperatorProcess:
    env = {**cluster.env(), FAKE_CLOCK_ENV: str(schedules.clock_file)}
    # Standalone (no peering): a SIGKILLed operator leaves its peering record behind for 60 s, and a
    # restarted one would pause that long; this test's operator is the only one in its namespace.
    log = cluster.config.log_dir / f"operator-{namespace}.log"
    process = OperatorProcess(env, namespace, log, extra_args=("--standalone",))
    process.start()
    yield process
    process.stop()


def minutes(n: int) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def test_runs_are_created_at_the_scheduled_times_in_the_time_zone(scheduler, schedules):
    # 02:30 in Kolkata (UTC+05:30, no daylight saving) is 21:00 UTC of the day before.
    local = dt.datetime.combine(
        schedules.base.date(), dt.time(2, 30), dt.timezone(dt.timedelta(hours=5, minutes=30))
    )
    first = local.astimezone(UTC)
    schedules.set_clock(first - minutes(1))
    schedules.create("kolkata", schedule="30 2 * * *", timeZone="Asia/Kolkata")
    schedules.wait_seen("kolkata", first - minutes(1))
    assert schedules.runs("kolkata") == []

    schedules.set_clock(first + dt.timedelta(seconds=20))
    schedules.wait_times("kolkata", [rfc3339(first)])
    run = schedules.runs("kolkata")[0]
    assert run["metadata"]["name"] == f"kolkata-{int(first.timestamp()) // 60}"
    owner = run["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("FineTuneSchedule", "kolkata", True)
    assert run["spec"]["dataset"]["train"] == f"file:///data/{local.date().isoformat()}/train.jsonl"
    assert run["spec"]["output"]["uri"] == f"file:///models/{run['metadata']['name']}"
    status = schedules.wait_status("kolkata", "one active run", lambda s: s.get("activeCount") == 1)
    assert status["lastScheduleTime"] == rfc3339(first)
    assert status["nextScheduleTime"] == rfc3339(first + dt.timedelta(days=1))

    schedules.set_clock(first + dt.timedelta(days=1, minutes=1))
    schedules.wait_times("kolkata", [rfc3339(first), rfc3339(first + dt.timedelta(days=1))])
    assert "SuccessfulCreate" in schedules.event_reasons("kolkata")


@pytest.mark.parametrize(
    ("policy", "expected_after_second"),
    [("Allow", [0, 10]), ("Forbid", [0]), ("Replace", [10])],
)
def test_concurrency_policy(scheduler, schedules, policy, expected_after_second):
    base = schedules.base
    schedules.create("conc", concurrencyPolicy=policy, startingDeadlineSeconds=120)
    schedules.set_clock(base + dt.timedelta(seconds=5))
    schedules.wait_times("conc", [rfc3339(base)])

    schedules.set_clock(base + minutes(10) + dt.timedelta(seconds=5))
    schedules.wait_times("conc", [rfc3339(base + minutes(m)) for m in expected_after_second])
    schedules.wait_seen("conc", base + minutes(10))
    if policy == "Forbid":
        wait_until(
            lambda: "JobAlreadyActive" in schedules.event_reasons("conc"), WAIT, "event JobAlreadyActive"
        )
        # Once the active run finishes, the skipped 00:10 run is past startingDeadlineSeconds: no
        # late start, and the next run comes at 00:20.
        schedules.finish(schedules.runs("conc")[0], "Succeeded")
        schedules.set_clock(base + minutes(15))
        schedules.wait_status("conc", "no active run", lambda s: s.get("activeCount") == 0)
        schedules.set_clock(base + minutes(20) + dt.timedelta(seconds=5))
        schedules.wait_times("conc", [rfc3339(base), rfc3339(base + minutes(20))])
    if policy == "Replace":
        wait_until(
            lambda: "SuccessfulDelete" in schedules.event_reasons("conc"), WAIT, "event SuccessfulDelete"
        )
    if policy == "Allow":
        schedules.wait_status("conc", "two active runs", lambda s: s.get("activeCount") == 2)


def test_history_limits_delete_the_oldest_finished_runs(scheduler, schedules):
    base = schedules.base
    schedules.create("hist", successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    outcomes = ["Failed", "Succeeded", "Failed", "Succeeded", "Succeeded"]
    for index, outcome in enumerate(outcomes):
        moment = base + minutes(10 * index)
        schedules.set_clock(moment + dt.timedelta(seconds=5))
        schedules.finish(schedules.wait_run("hist", moment), outcome)
    # kept: the newest failure (index 2) and the two newest successes (indexes 3 and 4)
    schedules.wait_times("hist", [rfc3339(base + minutes(10 * i)) for i in (2, 3, 4)])
    status = schedules.wait_status("hist", "no active run", lambda s: s.get("activeCount") == 0)
    assert status.get("lastSuccessfulTime")


def test_suspend_stops_new_runs_and_resume_catches_up_once(scheduler, schedules):
    base = schedules.base
    schedules.create("susp", suspend=True)
    schedules.set_clock(base + minutes(35))
    schedules.wait_status(
        "susp",
        "Ready=False Suspended",
        lambda s: any(c.get("reason") == "Suspended" for c in s.get("conditions", [])),
    )
    assert schedules.runs("susp") == []
    schedules.patch_spec("susp", suspend=False)
    # 00:00, 00:10, 00:20 and 00:30 were missed: only the most recent one runs.
    schedules.wait_times("susp", [rfc3339(base + minutes(30))])
    wait_until(lambda: "MissedSchedules" in schedules.event_reasons("susp"), WAIT, "event MissedSchedules")


def test_restarted_operator_creates_no_duplicates_and_one_catch_up(scheduler, schedules):
    base = schedules.base
    schedules.create("restart")
    schedules.set_clock(base + dt.timedelta(seconds=5))
    schedules.wait_times("restart", [rfc3339(base)])

    scheduler.kill()
    schedules.set_clock(base + minutes(45))  # 00:10 .. 00:40 pass while the operator is down
    scheduler.start()
    schedules.wait_times("restart", [rfc3339(base), rfc3339(base + minutes(40))])
    schedules.wait_seen("restart", base + minutes(45))

    scheduler.restart()  # same time again: nothing new
    schedules.set_clock(base + minutes(46))
    schedules.wait_seen("restart", base + minutes(46))
    schedules.set_clock(base + minutes(49))
    schedules.wait_status("restart", "two active runs", lambda s: s.get("activeCount") == 2)
    assert schedules.scheduled_times("restart") == [rfc3339(base), rfc3339(base + minutes(40))]
