"""The HF Trainer subclass: our loss (world-size exact, class-weighted) and a head learning rate.

Both are small overrides of documented Trainer hooks (``compute_loss`` and ``create_optimizer``);
everything else — the loop, accumulation, schedules, DDP, checkpoint state and resume — stays
HF's, which is what makes resume exact. The loss is ours for both tasks (see ``losses``): a sum
over the micro-batch divided by HF's global item count, so logged losses, gradient norms and
weights do not depend on the number of workers or on gradient accumulation.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from .data import SAMPLE_ID
from .losses import causal_lm_loss_sum, classification_loss_sum, labelled_items, normalise
from .modeling import is_head_parameter
from .sharding import enable_fsdp_on_cpu


class FinetuneTrainer(Trainer):
    """Trainer with optional class weights and head learning rate."""

    def __init__(
        self,
        *args: Any,
        class_weights: list[float] | None = None,
        head_learning_rate: float | None = None,
        task: str = "sequence-classification",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.head_learning_rate = head_learning_rate
        self.causal = task == "causal-lm"
        # Our compute_loss normalises by num_items_in_batch (a sum over the step's micro-batches and
        # ranks), so HF must count it, and must not divide our loss again by the accumulation steps.
        self.model_accepts_loss_kwargs = True
        self._sample_log = os.environ.get("FINETUNE_TEST_SAMPLE_LOG")

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        enable_fsdp_on_cpu(self)  # accelerate turns FSDP on for GPUs only; FSDP2 runs on CPU too

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        ids = inputs.pop(SAMPLE_ID, None)
        if self._sample_log and ids is not None:
            with open(self._sample_log, "a", encoding="utf-8") as handle:
                handle.write(
                    json.dumps(
                        {
                            "rank": self.args.process_index,
                            "step": self.state.global_step + 1,
                            "ids": [int(i) for i in ids],
                        }
                    )
                    + "\n"
                )
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        inputs.pop(SAMPLE_ID, None)
        return super().prediction_step(model, inputs, *args, **kwargs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        if "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)  # no labels: the model computes no loss of its own
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if self.causal:
            total = causal_lm_loss_sum(logits, labels)
        else:
            total = classification_loss_sum(logits, labels, self.class_weights)
        if model.training and num_items_in_batch is not None:
            loss = normalise(total, num_items_in_batch, self._averaged_ranks())
        else:
            loss = normalise(total, labelled_items(labels, self.causal))
        return (loss, outputs) if return_outputs else loss

    def _averaged_ranks(self) -> int:
        """Ranks whose gradients are averaged when num_items_in_batch counts all of them, else 1."""
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            return int(self.accelerator.num_processes)
        return 1

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.head_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                groups.setdefault((is_head_parameter(name), name in decay), []).append(param)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if with_decay else 0.0,
                "lr": self.head_learning_rate if is_head else self.args.learning_rate,
            }
            for (is_head, with_decay), params in sorted(groups.items())
        ]
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer
