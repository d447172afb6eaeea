"""The HF Trainer subclass: class-weighted loss and a separate learning rate for the new head.

Both are small overrides of documented Trainer hooks (``compute_loss`` and ``create_optimizer``);
everything else — the loop, accumulation, schedules, DDP, checkpoint state and resume — stays
HF's, which is what makes resume exact.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from .data import SAMPLE_ID
from .modeling import is_head_parameter


class FinetuneTrainer(Trainer):
    """Trainer with optional class weights and head learning rate."""

    def __init__(
        self,
        *args: Any,
        class_weights: list[float] | None = None,
        head_learning_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.head_learning_rate = head_learning_rate
        if class_weights is not None:
            # Our weighted loss is a mean per micro-batch: let HF divide by the accumulation steps.
            self.model_accepts_loss_kwargs = False
        self._sample_log = os.environ.get("FINETUNE_TEST_SAMPLE_LOG")

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
        if self.class_weights is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
        loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), weight=weight)
        return (loss, outputs) if return_outputs else loss

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
