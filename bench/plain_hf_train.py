"""The floor of the trainer-overhead benchmark: a plain HF Trainer script, no callbacks of ours.

Why: "our trainer" adds a callback (stop flag all-reduce, metrics, checkpoint scheduling), JSON
logs and its data pipeline on top of HF's Trainer. This script trains the same model on the same
data for the same steps with nothing added, so steps/s ours / steps/s this is our overhead.

The optimizer is a parameter (default ``adamw_torch_fused``) because it dominates a tiny model's
step on CPU (the fused kernel against a per-tensor loop): both sides of a comparison must use the
same one, or the ratio measures the optimizer instead of our overhead.

Usage: python bench/plain_hf_train.py MODEL_DIR TRAIN_JSONL STEPS BATCH LOGGING_STEPS OUT_DIR [OPTIM]
Prints one JSON line: {"train_runtime_seconds": ..., "global_step": ...}.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(
    model_dir: str,
    train_file: str,
    steps: int,
    batch: int,
    logging_steps: int,
    out_dir: str,
    optim: str = "adamw_torch_fused",
) -> None:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    with open(train_file) as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    labels = sorted({r["label"] for r in records})
    examples = [
        {**tokenizer(r["text"], truncation=True, max_length=16), "labels": labels.index(r["label"])}
        for r in records
    ]
    args = TrainingArguments(
        output_dir=out_dir,
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=5e-3,
        optim=optim,
        seed=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="steps",
        logging_steps=logging_steps,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=examples, data_collator=DataCollatorWithPadding(tokenizer)
    )
    started = time.monotonic()
    trainer.train()
    elapsed = time.monotonic() - started
    print(
        json.dumps({"train_runtime_seconds": elapsed, "global_step": trainer.state.global_step}), flush=True
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir, train_file, steps, batch, logging_steps, out_dir = sys.argv[1:7]
    optim = sys.argv[7] if len(sys.argv) > 7 else "adamw_torch_fused"
    main(model_dir, train_file, int(steps), int(batch), int(logging_steps), out_dir, optim)
