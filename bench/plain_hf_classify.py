"""The quality floor: fine-tune a classifier with HF's Trainer alone, then test macro-F1 (scikit-learn).

Why: bench/quality.py sets our operator path and our trainer against this script, which shares
nothing with them (no finetune_trainer import, scikit-learn's F1), with the same model,
hyperparameters, global batch and splits. A gap between the two is a defect of ours.

Usage: python bench/plain_hf_classify.py CONFIG_JSON
CONFIG_JSON: {"model", "train", "test" (JSONL with text/label), "labels", "epochs", "batch",
"learningRate", "maxLength", "seed", "weightDecay", "optimizer", "outDir"}.
Prints one JSON line: {"test_f1_macro": ..., "test_accuracy": ..., "train_runtime_seconds": ...}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(config: dict[str, Any]) -> dict[str, float]:
    import numpy as np
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    labels: list[str] = config["labels"]
    torch.manual_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    model = AutoModelForSequenceClassification.from_pretrained(
        config["model"],
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )

    def encode(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                **tokenizer(r["text"], truncation=True, max_length=config["maxLength"]),
                "labels": labels.index(r["label"]),
            }
            for r in records
        ]

    train, test = encode(read_jsonl(config["train"])), encode(read_jsonl(config["test"]))
    args = TrainingArguments(
        output_dir=config["outDir"],
        num_train_epochs=config["epochs"],
        per_device_train_batch_size=config["batch"],
        per_device_eval_batch_size=64,
        learning_rate=config["learningRate"],
        weight_decay=config["weightDecay"],
        optim=config["optimizer"],
        seed=config["seed"],
        data_seed=config["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer)
    )
    started = time.monotonic()
    trainer.train()
    elapsed = time.monotonic() - started
    predicted = np.argmax(trainer.predict(test).predictions, axis=-1)
    truth = [example["labels"] for example in test]
    return {
        "test_f1_macro": float(f1_score(truth, predicted, average="macro")),
        "test_accuracy": float(accuracy_score(truth, predicted)),
        "train_runtime_seconds": elapsed,
    }


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with open(sys.argv[1], encoding="utf-8") as handle:
        print(json.dumps(main(json.load(handle))), flush=True)
