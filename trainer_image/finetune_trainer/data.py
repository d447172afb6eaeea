"""Datasets: JSONL/CSV/Parquet at any URI, label mapping, seeded splits, tokenisation and masking.

Records are read whole into memory (fine-tuning sets are small next to the model); each file is
read with the standard library or pyarrow through fsspec, so every URI scheme works. The pure
pieces — label mapping, splits, class weights and the causal-LM prompt/response masking — are
separate functions with unit tests; :func:`load_datasets` composes them. Problems name the spec
field and the file (exit 78).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import torch

from . import storage
from .errors import ConfigError
from .retry import Fault, StorageUnavailable, classify
from .settings import DatasetSettings

IGNORE_INDEX = -100
SAMPLE_ID = "sample_id"
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


# ---------------------------------------------------------------------------------------------
# Reading records


def detect_format(uri: str, declared: str = "auto") -> str:
    if declared and declared != "auto":
        return declared
    lowered = uri.lower()
    for suffix, fmt in _FORMATS.items():
        if lowered.endswith(suffix) or lowered.endswith(suffix + ".gz"):
            return fmt
    raise ConfigError(
        f"dataset file {uri}: cannot tell the format from the name; use .jsonl, .csv or .parquet "
        "or set spec.dataset.format"
    )


def parse_jsonl(text: str, uri: str) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"dataset file {uri} line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ConfigError(f"dataset file {uri} line {number}: expected a JSON object per line")
        records.append(record)
    return records


def require_dataset_files(cfg: DatasetSettings) -> None:
    """Fail fast (exit 78, before the model download) when a dataset file named in the spec is missing."""
    for field_name, uri in (
        ("spec.dataset.train", cfg.train),
        ("spec.dataset.validation", cfg.validation),
        ("spec.dataset.test", cfg.test),
    ):
        if not uri:
            continue
        try:
            exists = storage.exists(uri)
        except Exception as exc:
            _raise_read_error(field_name, uri, exc)
        if not exists:
            raise ConfigError(f"{field_name}: dataset file {uri} does not exist; upload it or fix the URI")


def decode_utf8(raw: bytes, uri: str, field_name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{field_name}: dataset file {uri} is not UTF-8 text ({exc}); re-encode it as UTF-8"
        ) from exc


def read_error(field_name: str, uri: str, exc: Exception) -> Exception:
    """What a failed read of a dataset file becomes (pure).

    Only faults no retry can fix — the file is absent, the store's policy denies it, its bytes do
    not parse — are a ConfigError (exit 78). A store that stayed unavailable through the retries
    (StorageUnavailable) or an error we cannot place is returned as it is: the trainer then exits
    retryable and the operator restarts the job instead of failing it for good.
    """
    fault = classify(exc)
    if isinstance(exc, StorageUnavailable) or not fault.permanent:
        return exc
    hint = {
        Fault.NOT_FOUND: "upload it or fix the URI",
        Fault.DENIED: "give the storage Secret's credentials read access to it or fix the URI",
        Fault.INVALID: "fix the file or the URI",
    }[fault]
    return ConfigError(f"{field_name}: dataset file {uri} cannot be read ({fault.value}: {exc}); {hint}")


def _raise_read_error(field_name: str, uri: str, exc: Exception) -> NoReturn:
    error = read_error(field_name, uri, exc)
    if error is exc:
        raise exc
    raise error from exc


def read_records(uri: str, field_name: str, declared_format: str = "auto") -> list[dict[str, Any]]:
    """All records of one dataset file; ``field_name`` (e.g. spec.dataset.train) goes into errors."""
    fmt = detect_format(uri, declared_format)
    try:
        present = storage.exists(uri)
        raw = storage.read_bytes(uri, compression="gzip" if uri.endswith(".gz") else None) if present else b""
    except Exception as exc:
        _raise_read_error(field_name, uri, exc)
    if not present:
        raise ConfigError(f"{field_name}: dataset file {uri} does not exist; upload it or fix the URI")
    if fmt == "jsonl":
        records = parse_jsonl(decode_utf8(raw, uri, field_name), uri)
    elif fmt == "csv":
        try:
            records = list(csv.DictReader(io.StringIO(decode_utf8(raw, uri, field_name))))
        except csv.Error as exc:
            raise ConfigError(f"{field_name}: dataset file {uri} is not valid CSV ({exc})") from exc
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            records = pq.read_table(io.BytesIO(raw)).to_pylist()
        except Exception as exc:
            raise ConfigError(f"{field_name}: dataset file {uri} is not valid Parquet ({exc})") from exc
    else:
        raise ConfigError(f"spec.dataset.format: {fmt!r} is not one of auto, jsonl, csv, parquet")
    if not records:
        raise ConfigError(f"{field_name}: dataset file {uri} holds no records")
    return records


def require_fields(records: Sequence[Mapping[str, Any]], fields: Mapping[str, str], uri: str) -> None:
    """Every record has each required field; ``fields`` maps spec field -> column name."""
    for index, record in enumerate(records):
        for spec_field, column in fields.items():
            if record.get(column) in (None, ""):
                raise ConfigError(
                    f"dataset file {uri} record {index + 1}: missing column {column!r} "
                    f"(named by spec.dataset.{spec_field}); fix the data or the field name"
                )


# ---------------------------------------------------------------------------------------------
# Labels, splits, class weights (pure)


def build_label_names(
    values: Sequence[Any], declared: Sequence[str] | None, num_labels: int | None
) -> list[str]:
    """Label names in id order.

    Declared names win. Otherwise integer labels 0..n-1 keep their numbers, and any other labels
    are sorted by name so the mapping is the same on every rank and every attempt.
    """
    if declared:
        names = [str(x) for x in declared]
    else:
        distinct = {str(v) for v in values}
        if all(s.lstrip("-").isdigit() for s in distinct):
            top = max(int(s) for s in distinct)
            if min(int(s) for s in distinct) < 0:
                raise ConfigError("dataset labels: integer labels must be 0..numLabels-1")
            count = max(top + 1, num_labels or 0)
            names = [str(i) for i in range(count)]
        else:
            names = sorted(distinct)
    if num_labels is not None and len(names) > num_labels:
        raise ConfigError(
            f"spec.model.numLabels is {num_labels} but the data has {len(names)} labels "
            f"({', '.join(names[:10])}); raise numLabels or fix the labels"
        )
    if num_labels is not None and len(names) < num_labels:
        names += [f"label_{i}" for i in range(len(names), num_labels)]
    return names


def encode_labels(values: Sequence[Any], names: Sequence[str], uri: str) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for row, value in enumerate(values):
        key = str(value)
        if key not in index:
            raise ConfigError(
                f"dataset file {uri} record {row + 1}: label {value!r} is not one of the labels "
                f"({', '.join(names[:10])}); declare it in spec.dataset.labels or fix the data"
            )
        ids.append(index[key])
    return ids


def split_indices(
    count: int, validation: float, test: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Seeded shuffle, then test and validation fractions off the front; train keeps the rest."""
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ConfigError(
            f"spec.dataset.split: validation ({validation}) + test ({test}) must leave data to train on (< 1)"
        )
    order = list(range(count))
    random.Random(seed).shuffle(order)
    n_test = round(count * test)
    n_val = round(count * validation)
    test_idx = sorted(order[:n_test])
    val_idx = sorted(order[n_test : n_test + n_val])
    train_idx = sorted(order[n_test + n_val :])
    if not train_idx:
        raise ConfigError(f"spec.dataset.split leaves no training records out of {count}")
    return train_idx, val_idx, test_idx


def class_weights_auto(label_ids: Sequence[int], num_labels: int) -> list[float]:
    """Inverse-frequency weights n / (k * count_c), normalised so a balanced set gets 1.0 each."""
    counts = Counter(label_ids)
    total = len(label_ids)
    return [total / (num_labels * counts[c]) if counts.get(c) else 0.0 for c in range(num_labels)]


# ---------------------------------------------------------------------------------------------
# Tokenisation


def build_causal_example(
    prompt_ids: Sequence[int], response_ids: Sequence[int], max_length: int
) -> dict[str, list[int]]:
    """Concatenate prompt and response; loss only on response tokens (prompt labels = -100).

    When the prompt alone would fill ``max_length``, its oldest tokens are dropped so that at
    least half of the window is left for the response.
    """
    prompt = list(prompt_ids)
    response = list(response_ids)
    if len(prompt) + len(response) > max_length:
        keep_prompt = min(len(prompt), max(max_length - len(response), max_length // 2))
        prompt = prompt[len(prompt) - keep_prompt :]
        response = response[: max_length - len(prompt)]
    input_ids = prompt + response
    labels = [IGNORE_INDEX] * len(prompt) + response
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


class ListDataset(torch.utils.data.Dataset):
    """A map-style dataset over pre-tokenised examples (dicts of int lists)."""

    def __init__(self, examples: list[dict[str, Any]]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.examples[index], SAMPLE_ID: index}


class SampleIdCollator:
    """Wrap a collator: strip each example's ``sample_id`` and return them as one tensor.

    The trainer drops the ids before the forward pass; they let a test check which samples each
    optimizer step consumed (no sample twice in a resumed epoch).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        ids = [int(f[SAMPLE_ID]) for f in features]
        batch = self.inner([{k: v for k, v in f.items() if k != SAMPLE_ID} for f in features])
        batch[SAMPLE_ID] = torch.tensor(ids)
        return batch


def tokenize_classification(
    records: Sequence[Mapping[str, Any]], label_ids: Sequence[int], tokenizer: Any, cfg: DatasetSettings
) -> ListDataset:
    texts = [str(r[cfg.text_field]) for r in records]
    encoded = tokenizer(texts, truncation=True, max_length=cfg.max_length)
    examples = []
    for i in range(len(texts)):
        example = {key: encoded[key][i] for key in encoded}
        example["labels"] = int(label_ids[i])
        examples.append(example)
    return ListDataset(examples)


def tokenize_causal(
    records: Sequence[Mapping[str, Any]], tokenizer: Any, cfg: DatasetSettings
) -> ListDataset:
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    examples = []
    for record in records:
        prompt_ids = tokenizer(str(record[cfg.prompt_field]), add_special_tokens=True)["input_ids"]
        response_ids = tokenizer(str(record[cfg.response_field]), add_special_tokens=False)["input_ids"] + eos
        examples.append(build_causal_example(prompt_ids, response_ids, cfg.max_length))
    return ListDataset(examples)


class CausalCollator:
    """Right-pad input_ids with the pad token, attention_mask with 0 and labels with -100."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features])

        return {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE_INDEX),
        }


# ---------------------------------------------------------------------------------------------
# Composition


@dataclass
class PreparedData:
    train: ListDataset
    validation: ListDataset | None
    test: ListDataset | None
    label_names: list[str] | None
    class_weights: list[float] | None
    sizes: dict[str, int]
    train_label_ids: list[int] | None = None
    validation_label_ids: list[int] | None = None


def load_datasets(
    cfg: DatasetSettings,
    task: str,
    tokenizer: Any,
    num_labels: int | None,
    class_weights_setting: str | tuple[float, ...] | None,
) -> PreparedData:
    """Read, split, map labels and tokenise the train/validation/test data."""
    train_records = read_records(cfg.train, "spec.dataset.train", cfg.format)
    val_records = (
        read_records(cfg.validation, "spec.dataset.validation", cfg.format) if cfg.validation else None
    )
    test_records = read_records(cfg.test, "spec.dataset.test", cfg.format) if cfg.test else None

    want_val = val_records is None and cfg.split_validation > 0
    want_test = test_records is None and cfg.split_test > 0
    if want_val or want_test:
        train_idx, val_idx, test_idx = split_indices(
            len(train_records),
            cfg.split_validation if want_val else 0.0,
            cfg.split_test if want_test else 0.0,
            cfg.split_seed,
        )
        pool = train_records
        train_records = [pool[i] for i in train_idx]
        if want_val:
            val_records = [pool[i] for i in val_idx]
        if want_test:
            test_records = [pool[i] for i in test_idx]

    splits = {"train": train_records, "validation": val_records, "test": test_records}
    sources = {"train": cfg.train, "validation": cfg.validation or cfg.train, "test": cfg.test or cfg.train}
    sizes = {name: len(recs) for name, recs in splits.items() if recs}

    if task == "causal-lm":
        for name, recs in splits.items():
            if recs:
                require_fields(
                    recs,
                    {"promptField": cfg.prompt_field, "responseField": cfg.response_field},
                    sources[name],
                )
        built = {
            name: tokenize_causal(recs, tokenizer, cfg) if recs else None for name, recs in splits.items()
        }
        return PreparedData(built["train"], built["validation"], built["test"], None, None, sizes)

    for name, recs in splits.items():
        if recs:
            require_fields(recs, {"textField": cfg.text_field, "labelField": cfg.label_field}, sources[name])
    names = build_label_names([r[cfg.label_field] for r in train_records], cfg.labels, num_labels)
    label_ids = {
        name: encode_labels([r[cfg.label_field] for r in recs], names, sources[name]) if recs else None
        for name, recs in splits.items()
    }
    weights: list[float] | None = None
    if class_weights_setting == "auto":
        weights = class_weights_auto(label_ids["train"] or [], len(names))
    elif isinstance(class_weights_setting, tuple):
        if len(class_weights_setting) != len(names):
            raise ConfigError(
                f"spec.training.classWeights has {len(class_weights_setting)} weights for {len(names)} labels"
            )
        weights = list(class_weights_setting)
    built = {
        name: tokenize_classification(recs, label_ids[name] or [], tokenizer, cfg) if recs else None
        for name, recs in splits.items()
    }
    return PreparedData(
        built["train"],
        built["validation"],
        built["test"],
        names,
        weights,
        sizes,
        train_label_ids=label_ids["train"],
        validation_label_ids=label_ids["validation"],
    )
