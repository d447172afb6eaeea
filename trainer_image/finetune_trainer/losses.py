"""Training losses as sums, normalised by the global item count: the same numbers at any world size.

Why this exists: HF Trainer normalises a loss by ``num_items_in_batch`` — the labelled items of the
whole optimizer step, summed over gradient-accumulation micro-batches and gathered over ranks —
and multiplies it by the world size because DDP then averages the gradients. It does that for
every model whose ``forward`` takes ``**kwargs``, but most sequence-classification heads accept the
kwargs and still return a per-micro-batch *mean*: the loss (and the gradient norm) came out
multiplied by the world size, and gradient accumulation summed micro-batch means instead of
averaging them. We therefore compute the loss ourselves, for both tasks, as a sum over this
micro-batch divided by the global item count, so that

    loss(world size W, accumulation A, per-device batch B/(W*A)) == loss(1, 1, B)

for the logged loss, the gradients, the gradient norm that ``maxGradNorm`` clips, and the weights.

Class weights enter as ``sum_i w[y_i] * ce_i / N`` with N the number of labelled examples: an
unbiased estimate of the class-weighted risk that, unlike PyTorch's ``sum(w*ce)/sum(w)`` per
batch, does not depend on how the batch is split across ranks and micro-batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

IGNORE_INDEX = -100


def classification_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Sum of the (class-weighted) cross-entropy over the batch's labelled items."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    weight = (
        torch.tensor(list(class_weights), dtype=flat_logits.dtype, device=flat_logits.device)
        if class_weights is not None
        else None
    )
    total = functional.cross_entropy(
        flat_logits, flat_labels, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total


def causal_lm_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of next-token cross-entropy over labelled positions (labels shifted by one)."""
    shifted_logits = logits[..., :-1, :].reshape(-1, logits.shape[-1]).float()
    shifted_labels = labels[..., 1:].reshape(-1).to(shifted_logits.device)
    total = functional.cross_entropy(
        shifted_logits, shifted_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total


def labelled_items(labels: torch.Tensor, shifted: bool) -> int:
    """How many items a loss sum covers: labels other than -100 (after the shift for causal-lm)."""
    return int((labels[..., 1:] if shifted else labels).ne(IGNORE_INDEX).sum())


def normalise(total: torch.Tensor, items: torch.Tensor | int, data_parallel: int = 1) -> torch.Tensor:
    """The loss to back-propagate and log, from a micro-batch's loss sum.

    Training: ``items`` is the optimizer step's labelled items over all micro-batches and ranks
    (HF's ``num_items_in_batch``) and ``data_parallel`` the number of ranks whose gradients DDP
    averages, so the averaged gradient is the gradient of the mean over the whole step.
    Evaluation: ``items`` is this micro-batch's count and ``data_parallel`` 1 (the mean).
    """
    count = items.to(total.device) if torch.is_tensor(items) else torch.tensor(items, device=total.device)
    return total / count.clamp(min=1).to(total.dtype) * data_parallel
