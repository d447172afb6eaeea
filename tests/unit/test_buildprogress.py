"""Build progress: a long build says what it builds, that it is still going, how long it took."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from localcluster.buildprogress import progress_line, run_build


def test_progress_lines_name_the_build_and_the_elapsed_time() -> None:
    assert progress_line("kueue v0.19.2", 61.4, done=False) == "  still building kueue v0.19.2 … 61s so far"
    assert progress_line("kueue v0.19.2", 61.4, done=True) == "  built kueue v0.19.2 in 61s"
    assert "FAILED" in progress_line("kueue v0.19.2", 3, done=True, ok=False)


def test_a_long_build_logs_while_it_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = "import time; time.sleep(0.5)"
    with caplog.at_level(logging.INFO, logger="localcluster.buildprogress"):
        result = run_build([sys.executable, "-c", script], tmp_path, {}, "thing", "2/5", interval=0.1)
    assert result.returncode == 0
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("[2/5] building thing")
    assert any("still building thing" in line for line in lines[1:-1])
    assert lines[-1].startswith("[2/5]   built thing in")


def test_a_failed_build_returns_its_error_output(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('no such module'); sys.exit(3)"
    result = run_build([sys.executable, "-c", script], tmp_path, {}, "thing", interval=5)
    assert result.returncode == 3
    assert result.stderr_tail == "no such module"
