"""Pure pieces of the trainer: manifests, retention, config hash, metrics, masking, splits, settings."""

from __future__ import annotations

import math

import pytest

from finetune_trainer.checkpoints import files_owned_by_rank
from finetune_trainer.data import (
    IGNORE_INDEX,
    build_causal_example,
    build_label_names,
    class_weights_auto,
    encode_labels,
    split_indices,
)
from finetune_trainer.errors import ConfigError, one_line
from finetune_trainer.evaluation import accuracy, classification_metrics, macro_f1, per_class_f1, perplexity
from finetune_trainer.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    config_hash,
    merge_rank_parts,
    parse_manifest,
    stale_partial_steps,
    step_of_dir,
    steps_to_delete,
    verify_digests,
    verify_sizes,
)
from finetune_trainer.settings import settings_from_spec, validate_with_api

MANIFEST = Manifest(
    step=20, epoch=1.5, world_size=2, config_hash="abc",
    files=(FileEntry("model.safetensors", 10, "d1"), FileEntry("rng_state_1.pth", 3, "d2")),
    versions={"torch": "2"},
)  # fmt: skip


def test_manifest_round_trip():
    parsed = parse_manifest(MANIFEST.to_json(), expected_step=20)
    assert parsed == MANIFEST
    assert parsed.total_bytes == 13


@pytest.mark.parametrize(
    ("text", "step", "fragment"),
    [
        ("{", 20, "not valid JSON"),
        ('{"format": 2}', 20, "format"),
        (MANIFEST.to_json(), 30, "step 20"),
        ('{"format": 1, "step": 1}', 1, "lacks"),
        (MANIFEST.to_json().replace("rng_state_1.pth", "../escape"), 20, "escapes"),
    ],
)
def test_manifest_refusals(text, step, fragment):
    with pytest.raises(ManifestError, match=fragment):
        parse_manifest(text, expected_step=step)


def test_verify_sizes_and_digests():
    verify_sizes(MANIFEST, {"model.safetensors": 10, "rng_state_1.pth": 3, "extra": 1})
    with pytest.raises(ManifestError, match="missing"):
        verify_sizes(MANIFEST, {"model.safetensors": 10})
    with pytest.raises(ManifestError, match="9 bytes"):
        verify_sizes(MANIFEST, {"model.safetensors": 9, "rng_state_1.pth": 3})
    verify_digests(MANIFEST, {"model.safetensors": "d1", "rng_state_1.pth": "d2"})
    with pytest.raises(ManifestError, match="sha256"):
        verify_digests(MANIFEST, {"model.safetensors": "xx", "rng_state_1.pth": "d2"})


def test_merge_rank_parts():
    a, b = FileEntry("a", 1, "x"), FileEntry("b", 2, "y")
    assert merge_rank_parts([[b], [a, b]]) == (a, b)
    with pytest.raises(ManifestError, match="different contents"):
        merge_rank_parts([[a], [FileEntry("a", 1, "z")]])


@pytest.mark.parametrize(
    ("committed", "keep", "deleted"),
    [([], 3, []), ([5], 1, []), ([5, 10, 15], 2, [5]), ([15, 5, 10, 20], 1, [5, 10, 15]), ([5, 10], 0, [5])],
)
def test_retention(committed, keep, deleted):
    assert steps_to_delete(committed, keep) == deleted


def test_stale_partials_only_older_than_newest_commit():
    assert stale_partial_steps([5, 10, 15, 20], [10]) == [5]
    assert stale_partial_steps([5, 10], []) == []


def test_step_of_dir():
    assert step_of_dir("checkpoint-42") == 42
    assert step_of_dir("bucket/ckpt/checkpoint-7/") == 7
    assert step_of_dir("checkpoint-x") is None


def test_config_hash_covers_training_not_resources():
    spec = {"model": {"uri": "s3://m"}, "dataset": {"train": "s3://d"}, "training": {"learningRate": 1e-3},
            "resources": {"workers": 1}}  # fmt: skip
    same = {**spec, "resources": {"workers": 4}, "checkpoint": {"keep": 9}}
    changed = {**spec, "training": {"learningRate": 2e-3}}
    assert config_hash(spec) == config_hash(same)
    assert config_hash(spec) != config_hash(changed)


def test_files_owned_by_rank():
    files = ["model.safetensors", "optimizer.pt", "rng_state_0.pth", "rng_state_1.pth", "trainer_state.json"]
    assert files_owned_by_rank(files, 0, 1) == files
    assert files_owned_by_rank(files, 0, 2) == ["model.safetensors", "optimizer.pt", "rng_state_0.pth",
                                                "trainer_state.json"]  # fmt: skip
    assert files_owned_by_rank(files, 1, 2) == ["rng_state_1.pth"]


def test_classification_metrics():
    predictions, labels = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert accuracy(predictions, labels) == pytest.approx(0.6)
    f1 = per_class_f1(predictions, labels, 4)
    assert f1[0] == pytest.approx(0.5) and f1[1] == pytest.approx(0.8) and f1[2] == 0.0 and f1[3] is None
    assert macro_f1(predictions, labels, 4) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    metrics = classification_metrics(predictions, labels, ["a", "b c", "d", "e"])
    assert set(metrics) == {"accuracy", "f1_macro", "f1_weighted", "f1_a", "f1_b_c", "f1_d"}
    assert metrics["f1_weighted"] == pytest.approx((2 * 0.5 + 3 * 0.8) / 5)


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(7)) == pytest.approx(7)
    assert math.isfinite(perplexity(1e9))


@pytest.mark.parametrize(
    ("prompt", "response", "max_length", "inputs", "labels"),
    [
        ([1, 2], [3, 4], 8, [1, 2, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, 3, 4]),
        ([1, 2, 3, 4, 5, 6], [7, 8], 4, [5, 6, 7, 8], [IGNORE_INDEX, IGNORE_INDEX, 7, 8]),
        ([1, 2], [3, 4, 5, 6, 7], 4, [1, 2, 3, 4], [IGNORE_INDEX, IGNORE_INDEX, 3, 4]),
    ],
)
def test_causal_masking(prompt, response, max_length, inputs, labels):
    example = build_causal_example(prompt, response, max_length)
    assert example["input_ids"] == inputs
    assert example["labels"] == labels
    assert example["attention_mask"] == [1] * len(inputs)


def test_splits_are_seeded_disjoint_and_complete():
    train, val, test = split_indices(100, 0.1, 0.2, seed=7)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(train + val + test) == list(range(100))
    assert split_indices(100, 0.1, 0.2, seed=7) == (train, val, test)
    assert split_indices(100, 0.1, 0.2, seed=8) != (train, val, test)
    with pytest.raises(ConfigError, match=r"spec\.dataset\.split"):
        split_indices(10, 0.5, 0.5, seed=1)


def test_labels_and_class_weights():
    assert build_label_names(["pos", "neg", "pos"], None, None) == ["neg", "pos"]
    assert build_label_names([2, 0], None, 4) == ["0", "1", "2", "3"]
    assert build_label_names(["x"], ["a", "x"], 2) == ["a", "x"]
    with pytest.raises(ConfigError, match=r"spec\.model\.numLabels"):
        build_label_names(["a", "b", "c"], None, 2)
    with pytest.raises(ConfigError, match="record 2"):
        encode_labels(["a", "zz"], ["a", "b"], "file:///d.jsonl")
    assert class_weights_auto([0, 0, 0, 1], 2) == pytest.approx([4 / 6, 2.0])


def minimal_spec(**training):
    return {
        "model": {"uri": "file:///m", "task": "sequence-classification", "numLabels": 2},
        "dataset": {"train": "file:///train.jsonl"},
        "training": training,
        "output": {"uri": "file:///out"},
    }


def test_settings_from_validated_spec():
    settings = settings_from_spec(validate_with_api(minimal_spec(learningRate=1e-3, classWeights="auto")))
    assert settings.training.learning_rate == 1e-3
    assert settings.training.class_weights == "auto"
    assert settings.checkpoint.uri == "file:///out/checkpoints"
    assert settings.model.lora is None


def test_invalid_spec_names_the_field():
    with pytest.raises(ConfigError, match=r"spec\.training\.learningRate"):
        validate_with_api(minimal_spec(learningRate=-1))


def test_one_line_termination_message():
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 5000)) <= 1024
