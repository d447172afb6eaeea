"""Print results: a short fixed-width table for people, JSON for machines.

Why here and not in each script: every benchmark prints the same two forms (JSON on stdout, a
table and progress on stderr) and writes ``bench/results/<name>.json``; keeping the rendering pure
lets unit tests check it and keeps stdout parseable (nothing but the JSON goes there).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A fixed-width text table (markdown pipe syntax, so it pastes into docs/benchmarks.md)."""
    cells = [[str(h) for h in header], *[[format_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])


def progress(message: str) -> None:
    """A progress line on stderr, with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(name: str, result: dict[str, Any], summary: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``results_dir/<name>.json`` (with the machine, versions and date), print the JSON to
    stdout and ``summary`` to stderr."""
    from bench import machine

    result = {
        **result,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine.machine(),
        "versions": machine.versions(),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    text = json.dumps(result, indent=2, sort_keys=False)
    path.write_text(text + "\n")
    print(text, flush=True)
    print(summary, file=sys.stderr, flush=True)
    return path
