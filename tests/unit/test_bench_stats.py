"""bench.stats: percentiles (linear interpolation, as numpy's default), summaries and ratios."""

from __future__ import annotations

import pytest

from bench.stats import per_second, percentile, ratio, summarize


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # order does not matter
        (list(range(1, 101)), 99, 99.01),
        ([0.0, 10.0], 25, 2.5),
    ],
)
def test_percentile_interpolates_between_closest_ranks(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_says_no_samples():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_outside_range_is_refused(q):
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        percentile([1.0], q)


def test_summarize_reports_count_and_statistics():
    assert summarize([1.0, 2.0, 3.0, 4.0]) == {
        "n": 4,
        "p50": 2.5,
        "p99": 3.97,
        "min": 1.0,
        "max": 4.0,
        "mean": 2.5,
    }


def test_summarize_of_nothing_is_all_none():
    assert summarize([]) == {"n": 0, "p50": None, "p99": None, "min": None, "max": None, "mean": None}


@pytest.mark.parametrize(
    ("measured", "floor", "expected"),
    [(3.0, 1.5, 2.0), (1.0, 3.0, 0.33), (None, 1.0, None), (1.0, None, None), (1.0, 0.0, None)],
)
def test_ratio_is_measured_over_floor_or_none(measured, floor, expected):
    assert ratio(measured, floor) == expected


def test_per_second_needs_elapsed_time():
    assert per_second(10, 4.0) == 2.5
    assert per_second(10, 0.0) is None
    assert per_second(10, None) is None
