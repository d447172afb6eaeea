"""What `kubectl logs` gets from the process node: this run, the previous one, a tail, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.processnode.containerlogs import (
    LogQuery,
    LogQueryError,
    parse_query,
    read_run_offsets,
    record_run_start,
    run_ranges,
    select_range,
    tail_start,
)


def test_query_flags_and_numbers() -> None:
    assert parse_query({}) == LogQuery()
    assert parse_query({"follow": "true", "tailLines": "5", "limitBytes": "100"}) == LogQuery(
        follow=True, tail_lines=5, limit_bytes=100
    )
    assert parse_query({"previous": "true"}).previous


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"timestamps": "true"}, "--timestamps"),
        ({"sinceSeconds": "10"}, "--tail instead of --since"),
        ({"tailLines": "x"}, "not an integer"),
        ({"limitBytes": "-1"}, "must not be negative"),
        ({"follow": "true", "previous": "true"}, "--previous cannot be combined"),
    ],
)
def test_unsupported_queries_say_what_to_change(params: dict[str, str], words: str) -> None:
    with pytest.raises(LogQueryError, match=words):
        parse_query(params)


def test_runs_split_one_appended_file() -> None:
    assert run_ranges([], 10) == [(0, 10)]
    assert run_ranges([0, 4, 9], 12) == [(0, 4), (4, 9), (9, 12)]
    assert select_range([0, 4, 9], 12, previous=False) == (9, 12)
    assert select_range([0, 4, 9], 12, previous=True) == (4, 9)
    assert select_range([0], 12, previous=True) is None


def test_tail_counts_lines_from_the_end() -> None:
    data = b"a\nb\nc\n"
    assert data[tail_start(data, 2) :] == b"b\nc\n"
    assert data[tail_start(data, 9) :] == data
    assert data[tail_start(data, 0) :] == b""
    assert b"a\nb\npartial"[tail_start(b"a\nb\npartial", 1) :] == b"partial"


def test_run_starts_are_recorded_next_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "ns_pod_uid" / "worker.log"
    assert record_run_start(log) == 0
    log.write_bytes(b"first run\n")
    assert record_run_start(log) == 10
    assert read_run_offsets(log) == [0, 10]
