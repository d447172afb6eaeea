"""A diverging job on the real local cluster (issue 13 item 7): its loss turns NaN/Inf, and still
the operator keeps writing its status, posts one NonFiniteLoss warning, and suspend and the
deadline act on it. Before the fix the API server refused every status patch carrying `NaN`, and
from then on every pass of that job failed, deadline and suspend included."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from localcluster.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

TIMEOUT = 600.0  # real training on 2 shared cores


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def test_a_diverging_job_keeps_its_status_and_obeys_suspend_and_deadline(
    e2e_operator, finetunejobs, quickstart_job
):
    manifest = quickstart_job(
        # AdamW's decoupled decay at lr 10 and weightDecay 1 multiplies every decayed weight by -9
        # per step: float32 overflows within ~45 steps, and the loss turns inf, then NaN, for sure.
        training={
            "epochs": 50,
            "learningRate": 10.0,
            "headLearningRate": 10.0,
            "weightDecay": 1.0,
            "loggingSteps": 1,
        },
        resources={"workers": 1},
        checkpoint={"everySteps": 1000},
    )
    name = manifest["metadata"]["name"]
    finetunejobs.create(manifest)

    def warned() -> bool:
        return any(event.reason == "NonFiniteLoss" for event in finetunejobs.events(name))

    wait_until(warned, TIMEOUT, f"a NonFiniteLoss warning for {name}")
    # the status is still written after the loss went non-finite: the step keeps advancing
    first = finetunejobs.wait_status(name, lambda s: (s.get("progress") or {}).get("step"), "a step")
    step = first["progress"]["step"]
    later = finetunejobs.wait_status(
        name, lambda s: ((s.get("progress") or {}).get("step") or 0) > step, "the step to advance", TIMEOUT
    )
    json.dumps(later, allow_nan=False)  # nothing non-finite was ever written
    assert all(not isinstance(v, float) or math.isfinite(v) for v in later["progress"].values())
    assert sum(1 for event in finetunejobs.events(name) if event.reason == "NonFiniteLoss") == 1

    finetunejobs.patch_run_policy(name, suspend=True)
    finetunejobs.wait_condition(name, "Suspended", timeout=TIMEOUT)
    finetunejobs.wait_no_pods(name, timeout=TIMEOUT)

    finetunejobs.patch_run_policy(name, suspend=False, activeDeadlineSeconds=1)
    failed = finetunejobs.wait_condition(name, "Failed", reason="DeadlineExceeded", timeout=TIMEOUT)
    assert failed["phase"] == "Failed"
