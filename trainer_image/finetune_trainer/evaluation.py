"""Evaluation metrics as pure functions: accuracy, macro and per-class F1, perplexity.

Written out instead of importing scikit-learn (a heavy dependency for twenty lines) so that the
trainer image stays small and the definitions — e.g. that a class absent from both predictions and
labels is left out of the macro average — are visible and unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        return 0.0
    return sum(int(p == t) for p, t in zip(predictions, labels, strict=True)) / len(labels)


def per_class_f1(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> list[float | None]:
    """F1 of each class; None for a class that occurs neither in predictions nor in labels."""
    scores: list[float | None] = []
    for cls in range(num_classes):
        tp = sum(1 for p, t in zip(predictions, labels, strict=True) if p == cls and t == cls)
        fp = sum(1 for p, t in zip(predictions, labels, strict=True) if p == cls and t != cls)
        fn = sum(1 for p, t in zip(predictions, labels, strict=True) if p != cls and t == cls)
        if tp + fp + fn == 0:
            scores.append(None)
        else:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return scores


def macro_f1(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> float:
    present = [s for s in per_class_f1(predictions, labels, num_classes) if s is not None]
    return sum(present) / len(present) if present else 0.0


def weighted_f1(predictions: Sequence[int], labels: Sequence[int], num_classes: int) -> float:
    """F1 per class weighted by the class's support in the labels."""
    if not labels:
        return 0.0
    scores = per_class_f1(predictions, labels, num_classes)
    return sum((scores[c] or 0.0) * list(labels).count(c) for c in range(num_classes)) / len(labels)


def perplexity(mean_loss: float) -> float:
    """exp(loss), capped so an early huge loss does not overflow to inf in JSON and Prometheus."""
    return math.exp(min(mean_loss, 50.0))


def majority_class_accuracy(labels: Sequence[int]) -> float:
    if not labels:
        return 0.0
    return max(labels.count(c) for c in set(labels)) / len(labels)


def classification_metrics(
    predictions: Sequence[int], labels: Sequence[int], label_names: Sequence[str]
) -> dict[str, float]:
    """The metrics reported for sequence classification (keys become ``eval_<key>``)."""
    metrics: dict[str, float] = {
        "accuracy": accuracy(predictions, labels),
        "f1_macro": macro_f1(predictions, labels, len(label_names)),
        "f1_weighted": weighted_f1(predictions, labels, len(label_names)),
    }
    for name, score in zip(label_names, per_class_f1(predictions, labels, len(label_names)), strict=True):
        if score is not None:
            metrics[f"f1_{safe_metric_name(name)}"] = score
    return metrics


def safe_metric_name(name: str) -> str:
    """A label name usable inside a metric key (letters, digits, underscores)."""
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in str(name))
    return cleaned or "label"


def make_classification_compute_metrics(label_names: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """The ``compute_metrics`` hook for HF Trainer: argmax over logits, then the metrics above."""

    def compute(eval_prediction: Any) -> dict[str, float]:
        logits, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        predicted = [int(i) for i in logits.argmax(axis=-1).reshape(-1)]
        truth = [int(i) for i in label_ids.reshape(-1)]
        return classification_metrics(predicted, truth, label_names)

    return compute


def add_perplexity(metrics: Mapping[str, float], prefix: str = "eval") -> dict[str, float]:
    """Metrics with ``<prefix>_perplexity`` added from ``<prefix>_loss`` when present."""
    out = dict(metrics)
    loss = out.get(f"{prefix}_loss")
    if loss is not None:
        out[f"{prefix}_perplexity"] = perplexity(float(loss))
    return out
