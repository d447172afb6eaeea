"""bench.docs_tables: the generated block of docs/benchmarks.md is replaced, the rest is kept."""

from __future__ import annotations

import pytest

from bench.docs_tables import BEGIN, DOC, END, render, replace_block


def test_replace_block_keeps_the_hand_written_text():
    document = f"intro\n{BEGIN}\nold tables\n{END}\noutro\n"
    assert replace_block(document, "new tables") == f"intro\n{BEGIN}\n\nnew tables\n\n{END}\noutro\n"


def test_replace_block_without_markers_says_where_they_go():
    with pytest.raises(ValueError, match="lacks the markers"):
        replace_block("no markers here", "tables")


def test_the_page_has_the_markers():
    text = DOC.read_text()
    assert BEGIN in text and END in text


def test_render_a_recovery_result_with_machine_and_versions():
    result = {
        "date": "2026-01-01T00:00:00+0000",
        "machine": {"cpu_model": "CPU X", "usable_cores": 2, "memory_gib": 8.0},
        "versions": {"kubernetes": "v1.35.4"},
        "workers": 2,
        "phaseSeconds": {"detection": {"n": 2, "p50": 1.5, "max": 2.0}},
    }
    text = render({"recovery": result})
    assert "| CPU X " in text and "| kubernetes | v1.35.4 |" in text
    assert "| detection | 1.5   | 2     | 2    |" in text


def test_render_lists_a_scale_size_that_did_not_finish():
    result = {"nodes": {"count": 200, "gpusPerNode": 8}, "sizes": [{"jobs": 1000, "error": "timed out"}]}
    assert "Not finished: N=1000: timed out" in render({"operator_scale": result})
