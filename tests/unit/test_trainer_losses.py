"""Losses as sums over a global count: splitting a step across ranks or micro-batches changes nothing."""

from __future__ import annotations

import math

import pytest
import torch

from finetune_trainer.losses import (
    IGNORE_INDEX,
    causal_lm_loss_sum,
    classification_loss_sum,
    labelled_items,
    normalise,
)


def test_weighted_classification_sum_is_the_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    weights = [0.5, 2.0]
    expected = sum(
        weights[int(y)] * -torch.log_softmax(row, dim=-1)[int(y)]
        for row, y in zip(logits, labels, strict=True)
    )
    assert classification_loss_sum(logits, labels, weights).item() == pytest.approx(float(expected))
    assert labelled_items(labels, shifted=False) == 3


def test_unweighted_mean_equals_torch_mean():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 2, 1, 1])
    mean = normalise(classification_loss_sum(logits, labels), labelled_items(labels, shifted=False))
    assert mean.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-6)


@pytest.mark.parametrize("weights", [None, [1.0, 3.0, 0.25]])
def test_two_ranks_average_to_the_single_rank_loss_and_gradient(weights):
    """What DDP does: each rank's loss over the global count times 2, gradients averaged."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 3, generator=generator, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 2, 0, 1, 1, 2])
    whole = normalise(classification_loss_sum(logits, labels, weights), 8)
    (whole_grad,) = torch.autograd.grad(whole, logits)

    halves = []
    grads = torch.zeros_like(logits)
    for part in (slice(0, 3), slice(3, 8)):  # unequal shares: a count per rank would be wrong
        loss = normalise(classification_loss_sum(logits[part], labels[part], weights), 8, data_parallel=2)
        (grad,) = torch.autograd.grad(loss, logits)
        halves.append(loss.item())
        grads += grad / 2  # DDP averages
    assert sum(halves) / 2 == pytest.approx(whole.item(), rel=1e-6)  # HF logs the mean over ranks
    torch.testing.assert_close(grads, whole_grad)


def test_causal_lm_shifts_and_skips_prompt_positions():
    vocab = 5
    logits = torch.zeros(1, 4, vocab)
    logits[0, 1, 3] = 10.0  # position 1 predicts token 3 with confidence
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4]])
    total = causal_lm_loss_sum(logits, labels)
    assert labelled_items(labels, shifted=True) == 2
    confident = -torch.log_softmax(logits[0, 1], dim=-1)[3].item()
    uniform = math.log(vocab)
    assert total.item() == pytest.approx(confident + uniform, rel=1e-5)


def test_empty_count_does_not_divide_by_zero():
    assert normalise(torch.tensor(0.0), 0).item() == 0.0
