"""LoRA SFT of a tiny GPT-2-style model: loss on response tokens only, merged output generates."""

from __future__ import annotations

import json

from finetune_api import parse_spec
from finetune_testkit.trainer_helpers import (
    run_trainer,
    s3_test_prefix,
    sft_records,
    trainer_env,
    write_config,
    write_jsonl,
    write_tiny_gpt2,
)
from finetune_trainer.data import IGNORE_INDEX, tokenize_causal
from finetune_trainer.settings import settings_from_spec


def test_only_response_tokens_carry_loss(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(write_tiny_gpt2(tmp_path / "model")))
    record = {"prompt": "question : say hello answer :", "response": "hello world"}
    spec = parse_spec(
        {
            "model": {"uri": "file:///unused", "task": "causal-lm"},
            "dataset": {"train": "file:///unused.jsonl", "maxLength": 32},
            "output": {"uri": "file:///unused-out"},
        }
    )
    example = tokenize_causal([record], tokenizer, settings_from_spec(spec).dataset).examples[0]
    prompt_len = len(tokenizer(record["prompt"])["input_ids"])
    assert example["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    response = example["labels"][prompt_len:]
    assert tokenizer.convert_ids_to_tokens(response) == ["hello", "world", "<eos>"]
    assert example["input_ids"][prompt_len:] == response


def test_lora_sft_merges_and_generates(tmp_path, s3_bucket, s3, cluster_env):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = write_tiny_gpt2(tmp_path / "model")
    write_jsonl(tmp_path / "sft.jsonl", sft_records(64))
    prefix = s3_test_prefix(s3_bucket)
    spec = {
        "model": {"uri": f"file://{model_dir}", "task": "causal-lm",
                  "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "dataset": {"train": f"file://{tmp_path}/sft.jsonl", "maxLength": 32, "split": {"validation": 0.25}},
        "training": {"epochs": 3, "batchSizePerDevice": 8, "learningRate": 1e-2, "loggingSteps": 1,
                     "evaluation": {"strategy": "epoch", "metric": "perplexity"}},
        "checkpoint": {"uri": f"{prefix}/ckpt", "everySteps": 10},
        "output": {"uri": f"{prefix}/out", "mergeLora": True},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    }  # fmt: skip
    result = run_trainer(write_config(tmp_path / "job.json", spec), trainer_env(tmp_path, **cluster_env))
    assert result.returncode == 0, result.stderr[-4000:]

    local = tmp_path / "merged"
    s3.get(f"{prefix}/out".removeprefix("s3://") + "/", str(local), recursive=True)
    metrics = json.loads((local / "metrics.json").read_text())
    assert metrics["eval_perplexity"] > 1.0
    assert not (local / "adapter_config.json").exists()  # merged: a plain transformers model
    model = AutoModelForCausalLM.from_pretrained(str(local))
    tokenizer = AutoTokenizer.from_pretrained(str(local))
    prompt = tokenizer("question : say hello answer :", return_tensors="pt")
    generated = model.generate(
        **prompt, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    assert generated.shape[1] > prompt["input_ids"].shape[1]
