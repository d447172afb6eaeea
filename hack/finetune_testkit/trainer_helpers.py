"""Builders for the trainer tests: tiny models, offline tokenizers, learnable data, configs, runs.

Everything is built from a config on the fly (no Hub access) and is small enough to train for
real on a shared CPU in seconds.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
POSITIVE = ["good", "great", "excellent", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "dreadful"]
FILLER = [
    "the",
    "a",
    "movie",
    "film",
    "was",
    "really",
    "plot",
    "actors",
    "quite",
    "very",
    "and",
    "it",
    "this",
]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tiny_bert(directory: Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT-style encoder with a word-level vocabulary of the sentiment words, saved to disk."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER))) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(set(POSITIVE + NEGATIVE + FILLER)),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def write_tiny_gpt2(directory: Path, seed: int = 0) -> Path:
    """A GPT-2-style decoder with a word-level tokenizer (eos and pad tokens), saved to disk."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    words = [
        "<pad>",
        "<unk>",
        "<eos>",
        "question",
        "answer",
        ":",
        "what",
        "is",
        "colour",
        "of",
        "sky",
        "grass",
        "blue",
        "green",
        "snow",
        "white",
        "say",
        "hello",
        "world",
        "yes",
        "no",
    ]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(words),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=2,
        eos_token_id=2,
        pad_token_id=0,
    )
    GPT2LMHeadModel(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def sentiment_records(count: int, seed: int, positive_share: float = 0.6) -> list[dict[str, str]]:
    """Learnable classification data: the label is the polarity of the one sentiment word."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        positive = rng.random() < positive_share
        words = [*rng.sample(FILLER, 4), rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        records.append({"text": " ".join(words), "label": "pos" if positive else "neg"})
    return records


def sft_records(count: int) -> list[dict[str, str]]:
    pairs = [
        ("question : what is colour of sky answer :", "blue"),
        ("question : what is colour of grass answer :", "green"),
        ("question : what is colour of snow answer :", "white"),
        ("question : say hello answer :", "hello world"),
    ]
    return [{"prompt": pairs[i % len(pairs)][0], "response": pairs[i % len(pairs)][1]} for i in range(count)]


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def classification_spec(
    model_uri: str,
    train_uri: str,
    validation_uri: str | None,
    output_uri: str,
    checkpoint_uri: str,
    **training: Any,
) -> dict[str, Any]:
    dataset: dict[str, Any] = {"train": train_uri, "maxLength": 16}
    if validation_uri:
        dataset["validation"] = validation_uri
    return {
        "model": {"uri": model_uri, "task": "sequence-classification", "numLabels": 2},
        "dataset": dataset,
        "training": {
            "epochs": 2,
            "batchSizePerDevice": 8,
            "learningRate": 5e-3,
            "loggingSteps": 1,
            "evaluation": {"strategy": "epoch", "metric": "accuracy"},
            **training,
        },
        "checkpoint": {"uri": checkpoint_uri, "everySteps": 5, "keep": 2},
        "output": {"uri": output_uri},
        "storage": {"secretRef": {"name": "s3-credentials"}},
    }


def tiny_classification_files(directory: Path, seed: int = 1, count: int = 160) -> tuple[Path, Path]:
    """A tiny BERT and `count` sentiment records written under `directory`: (model dir, train.jsonl)."""
    model = write_tiny_bert(directory / "model")
    train = write_jsonl(directory / "train.jsonl", sentiment_records(count, seed=seed))
    return model, train


def until_stopped_spec(model: Path, train: Path, prefix: str, **training: Any) -> dict[str, Any]:
    """A classification job that trains until it is stopped: huge maxSteps, constant LR, no evaluation."""
    spec = classification_spec(
        f"file://{model}", f"file://{train}", None, f"{prefix}/out", f"{prefix}/ckpt",
        maxSteps=100000, scheduler="constant", **training,
    )  # fmt: skip
    spec["training"]["evaluation"] = {"strategy": "no"}
    return spec


def s3_test_prefix(bucket: str) -> str:
    """A fresh prefix in the test bucket, so tests never see each other's checkpoints or outputs."""
    return f"s3://{bucket}/trainer-tests/{uuid.uuid4().hex[:10]}"


def write_config(path: Path, spec: Mapping[str, Any]) -> Path:
    """The trainer's --config file (JSON, which the trainer reads like YAML)."""
    path.write_text(json.dumps(spec))
    return path


def trainer_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "FINETUNE_METRICS_PORT": "0",
            "FINETUNE_TERMINATION_LOG": str(tmp / "termination-log"),
            "FINETUNE_WORK_DIR": str(tmp / "work"),
            "FINETUNE_JOB_NAME": "test-job",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("FINETUNE_JOB_SPEC", None)
    env.update(extra)
    return env


def run_trainer(
    config: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finetune_trainer", "--config", str(config)],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_distributed(entry_module: str, config: Path, env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """Two local workers of `python -m finetune_trainer` under `python -m <entry_module>`.

    `entry_module` is torch.distributed.run (torchrun itself) or finetune_trainer.launch (the pod's
    entry point, which wraps torchrun); output goes to `log`.
    """
    command = [
        sys.executable, "-m", entry_module, "--nnodes=1", "--nproc-per-node=2",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}",
        "-m", "finetune_trainer", "--config", str(config),
    ]  # fmt: skip
    return subprocess.Popen(command, env=dict(env), cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def step_losses(stderr: str) -> dict[int, float]:
    """Per-step training loss from the trainer's JSON 'train log' lines (loggingSteps 1)."""
    return {
        int(r["step"]): float(r["loss"])
        for r in json_lines(stderr)
        if r.get("msg") == "train log" and "loss" in r
    }


def committed_steps(text: str) -> list[int]:
    """Steps of the 'checkpoint committed' log lines, in order."""
    return [r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "checkpoint committed"]
