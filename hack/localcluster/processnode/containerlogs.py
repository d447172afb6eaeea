"""Which bytes of a container's log file `kubectl logs` asks for: this run, the previous one, a tail.

Why runs are recorded: the process node appends every run of a container to one file
(``<ns>_<pod>_<uid>/<container>.log``, kept for the tests and tools that read it). A kubelet keeps
one file per run instead, which is what `kubectl logs --previous` needs. So at each start the
podworker appends the file's size to ``<container>.log.runs``; run *k* is the byte range from the
*k*-th recorded offset to the next one (or the end of the file for the last run).

Everything here but the two small file helpers is pure, so the query semantics are unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class LogQueryError(ValueError):
    """A query the endpoint answers with 400 Bad Request (the message says what to change)."""


@dataclass(frozen=True)
class LogQuery:
    """The parameters of the kubelet's ``/containerLogs`` endpoint that we honour."""

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _positive(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise LogQueryError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise LogQueryError(f"{name} must not be negative (got {value})")
    return value


def parse_query(params: dict[str, str]) -> LogQuery:
    """The query string of a ``/containerLogs`` request; unsupported options are refused by name."""
    if _flag(params.get("timestamps")):
        raise LogQueryError("the process node does not record log timestamps; drop --timestamps")
    if params.get("sinceSeconds") or params.get("sinceTime"):
        raise LogQueryError("the process node does not record log timestamps; use --tail instead of --since")
    query = LogQuery(
        follow=_flag(params.get("follow")),
        previous=_flag(params.get("previous")),
        tail_lines=_positive(params, "tailLines"),
        limit_bytes=_positive(params, "limitBytes"),
    )
    if query.follow and query.previous:
        raise LogQueryError("--previous cannot be combined with --follow (that run has ended)")
    return query


def run_ranges(offsets: list[int], size: int) -> list[tuple[int, int]]:
    """Byte ranges of each run, given the recorded start offsets and the file's current size."""
    starts = [offset for offset in offsets if 0 <= offset <= size] or [0]
    ends = [*starts[1:], size]
    return list(zip(starts, ends, strict=True))


def select_range(offsets: list[int], size: int, previous: bool) -> tuple[int, int] | None:
    """The range of the current run, or of the one before it; None when there is no previous run."""
    ranges = run_ranges(offsets, size)
    if previous:
        return ranges[-2] if len(ranges) >= 2 else None
    return ranges[-1]


def tail_start(data: bytes, lines: int) -> int:
    """Index in ``data`` where its last ``lines`` lines begin (a trailing newline ends a line)."""
    if lines == 0:
        return len(data)
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    position = end
    for _ in range(lines):
        position = data.rfind(b"\n", 0, position)
        if position < 0:
            return 0
    return position + 1


def runs_file(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".runs")


def record_run_start(log_path: Path) -> int:
    """Append the log's current size as the start of a new run; return that offset."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(runs_file(log_path), "a") as handle:
        handle.write(f"{offset}\n")
    return offset


def read_run_offsets(log_path: Path) -> list[int]:
    try:
        return [int(line) for line in runs_file(log_path).read_text().split()]
    except (OSError, ValueError):
        return []
