"""Read Prometheus text exposition (the API server's /metrics) into samples and sum counters.

Why: the scale benchmark counts the API requests the operator made from the API server's own
counters, by reading them before and after a run. Only the small part of the text format the API
server emits is needed: ``name{label="value",...} number`` lines, comments and blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def _unescape(value: str) -> str:
    return value.replace(r"\"", '"').replace(r"\n", "\n").replace("\\\\", "\\")


def parse(text: str, names: tuple[str, ...] | None = None) -> list[Sample]:
    """Every sample line of ``text`` (only metrics in ``names`` when given: the API server's text is
    megabytes); comments, blank and malformed lines are skipped."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if names and not line.startswith(names):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {key: _unescape(raw) for key, raw in _LABEL.findall(match["labels"] or "")}
        if names and match["name"] not in names:
            continue
        samples.append(Sample(match["name"], labels, value))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def by_label(samples: list[Sample], name: str, label: str, **labels: str) -> dict[str, float]:
    """``name`` summed per value of ``label`` (samples matching ``labels``)."""
    sums: dict[str, float] = {}
    for sample in samples:
        if sample.name != name or not all(sample.labels.get(k) == v for k, v in labels.items()):
            continue
        key = sample.labels.get(label, "")
        sums[key] = sums.get(key, 0.0) + sample.value
    return sums


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """Per-key increase of counters from ``before`` to ``after`` (keys new in ``after`` count fully)."""
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] - before.get(key, 0.0)}
