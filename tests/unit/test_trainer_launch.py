"""The launcher keeps the exit codes (docs/architecture.md, "Exit-code contract")
across torchrun, which reports 1 for any worker failure."""

import json
from pathlib import Path

import pytest

from finetune_trainer.launch import decisive_exit, read_records


def rec(rank: int, code: int, message: str = "") -> dict:
    return {"rank": rank, "code": code, "message": message}


@pytest.mark.parametrize(
    ("torchrun_code", "records", "expected"),
    [
        (0, [rec(0, 0, '{"step": 10}'), rec(1, 0)], (0, '{"step": 10}')),
        (0, [], (0, "")),
        (
            1,
            [rec(0, 78, "invalid configuration or data: spec.x"), rec(1, 1, "boom")],
            (78, "invalid configuration or data: spec.x"),
        ),
        (
            1,
            [rec(0, 143, "stopped on SIGTERM at step 7"), rec(1, 143, "stopped")],
            (143, "stopped on SIGTERM at step 7"),
        ),
        (1, [rec(0, 143, "stopped"), rec(1, 78, "bad data")], (78, "bad data")),
        (
            1,
            [rec(0, 0), rec(1, 1, "training failed (retryable): RuntimeError")],
            (1, "training failed (retryable): RuntimeError"),
        ),
        (-9, [], (137, "")),
        (1, [], (1, "")),
    ],
)
def test_decisive_exit(torchrun_code: int, records: list, expected: tuple) -> None:
    code, message = decisive_exit(torchrun_code, records)
    assert code == expected[0]
    assert message.startswith(expected[1])
    if not records and torchrun_code:
        assert "no worker reported why" in message


def test_read_records_skips_unreadable_files_and_orders_by_rank(tmp_path: Path) -> None:
    (tmp_path / "rank-1.json").write_text(json.dumps(rec(1, 1, "b")))
    (tmp_path / "rank-0.json").write_text(json.dumps(rec(0, 0, "a")))
    (tmp_path / "rank-2.json").write_text("{not json")
    assert [r["rank"] for r in read_records(tmp_path)] == [0, 1]
