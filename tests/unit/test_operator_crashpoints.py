"""The operator's test-only crash hook: kills only at the named point, and only when asked."""

from __future__ import annotations

import signal
import subprocess
import sys

from finetune_operator.crashpoints import ENV, POINTS


def run_point(point: str, env_value: str | None) -> int:
    env = {} if env_value is None else {ENV: env_value}
    code = f"from finetune_operator.crashpoints import crash_point; crash_point({point!r}); print('alive')"
    return subprocess.run([sys.executable, "-c", code], env={**env}, check=False, timeout=60).returncode


def test_the_named_point_sigkills_and_others_do_nothing():
    assert run_point("after-status-write", "after-status-write") == -signal.SIGKILL
    assert run_point("after-status-write", "after-create-job") == 0
    assert run_point("after-status-write", None) == 0
    assert len(set(POINTS)) == 5
