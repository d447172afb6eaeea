"""The trainer trains for real on CPU against the local S3 server (issue 5).

Each test builds a tiny model offline, writes data and configuration, runs
``python -m finetune_trainer`` as a subprocess (the way the worker pod runs it) and checks what it
left in object storage, its logs and its exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from finetune_testkit.trainer_helpers import (
    classification_spec,
    json_lines,
    run_trainer,
    s3_test_prefix,
    sentiment_records,
    step_losses,
    trainer_env,
    write_config,
    write_jsonl,
    write_tiny_bert,
)

DOCUMENTED_SERIES = [
    "finetune_trainer_step",
    "finetune_trainer_total_steps",
    "finetune_trainer_epoch",
    "finetune_trainer_train_loss",
    "finetune_trainer_eval_loss",
    "finetune_trainer_eval_metric",
    "finetune_trainer_best_metric",
    "finetune_trainer_learning_rate",
    "finetune_trainer_samples_per_second",
    "finetune_trainer_tokens_per_second",
    "finetune_trainer_checkpoint_last_step",
    "finetune_trainer_checkpoint_last_timestamp_seconds",
    "finetune_trainer_checkpoint_save_duration_seconds",
    "finetune_trainer_checkpoint_upload_duration_seconds",
    "finetune_trainer_checkpoint_upload_bytes",  # exposed as ..._total
    "finetune_trainer_info",
]


@pytest.fixture
def s3_prefix(s3_bucket: str) -> str:
    return s3_test_prefix(s3_bucket)


@pytest.fixture
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")


def upload_data(s3, s3_prefix: str, tmp_path: Path) -> tuple[str, str, list[dict]]:
    val = sentiment_records(60, seed=2)
    write_jsonl(tmp_path / "train.jsonl", sentiment_records(160, seed=1))
    write_jsonl(tmp_path / "val.jsonl", val)
    for name in ("train.jsonl", "val.jsonl"):
        s3.put_file(str(tmp_path / name), f"{s3_prefix}/data/{name}".removeprefix("s3://"))
    return f"{s3_prefix}/data/train.jsonl", f"{s3_prefix}/data/val.jsonl", val


def test_tiny_classifier_learns_and_publishes(tmp_path, tiny_bert, s3, s3_prefix, cluster_env):
    train_uri, val_uri, val = upload_data(s3, s3_prefix, tmp_path)
    spec = classification_spec(
        f"file://{tiny_bert}",
        train_uri,
        val_uri,
        f"{s3_prefix}/out",
        f"{s3_prefix}/ckpt",
        epochs=4,
        learningRate=5e-3,
    )
    manifest = {"apiVersion": "finetune.dev/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "tiny"}}
    config = write_config(tmp_path / "job.yaml", {**manifest, "spec": spec})
    snapshot = tmp_path / "metrics.txt"
    result = run_trainer(
        config, trainer_env(tmp_path, **cluster_env, FINETUNE_TEST_METRICS_SNAPSHOT=str(snapshot))
    )
    assert result.returncode == 0, result.stderr[-4000:]

    evals = [r for r in json_lines(result.stderr) if r.get("msg") == "eval log" and "eval_accuracy" in r]
    assert len(evals) >= 4
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    majority = max(sum(r["label"] == "pos" for r in val), sum(r["label"] == "neg" for r in val)) / len(val)
    assert evals[-1]["eval_accuracy"] > majority

    out = f"{s3_prefix}/out".removeprefix("s3://")
    names = {p.rsplit("/", 1)[-1] for p in s3.find(out)}
    assert {"config.json", "model.safetensors", "labels.json", "metrics.json", "README.md"} <= names
    assert any(n.startswith("tokenizer") for n in names)
    metrics = json.loads(s3.cat_file(f"{out}/metrics.json"))
    assert metrics["eval_accuracy"] > majority
    labels = json.loads(s3.cat_file(f"{out}/labels.json"))
    assert labels["id2label"] == {"0": "neg", "1": "pos"}
    card = s3.cat_file(f"{out}/README.md").decode()
    assert "sequence-classification" in card and "eval_accuracy" in card

    # Checkpoints: committed every 5 steps, only the newest 2 kept, each with its manifest.
    # (SeaweedFS may keep an emptied prefix listed as a directory: count directories with files.)
    ckpt = f"{s3_prefix}/ckpt".removeprefix("s3://")
    s3.invalidate_cache()
    entries = {p.removeprefix(ckpt + "/").split("/", 1)[0] for p in s3.find(ckpt)}
    kept = sorted(entry for entry in entries if entry.startswith("checkpoint-"))
    assert kept == ["checkpoint-75", "checkpoint-80"]
    assert entries - set(kept) == {"_attempts"}  # the writers' fencing markers, nothing else
    assert s3.exists(f"{ckpt}/checkpoint-80/manifest.json")

    # The metrics endpoint served every documented series.
    families = {f.name: f for f in text_string_to_metric_families(snapshot.read_text())}
    missing = [name for name in DOCUMENTED_SERIES if name not in families or not families[name].samples]
    assert not missing, f"series missing from the endpoint: {missing}"
    step = next(s.value for s in families["finetune_trainer_step"].samples)
    assert step == 80
    assert next(s.value for s in families["finetune_trainer_checkpoint_last_step"].samples) == 80
    info = families["finetune_trainer_info"].samples[0].labels
    assert {"torch", "transformers", "peft", "task"} <= set(info)


def test_bad_configuration_exits_78_naming_the_field(tmp_path, tiny_bert):
    spec = classification_spec(
        f"file://{tiny_bert}",
        "file:///nonexistent/train.jsonl",
        None,
        f"file://{tmp_path}/out",
        f"file://{tmp_path}/ckpt",
        learningRate=-1,
    )
    config = write_config(tmp_path / "job.json", spec)
    result = run_trainer(config, trainer_env(tmp_path))
    assert result.returncode == 78, result.stderr[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert "spec.training.learningRate" in message
    assert "\n" not in message.strip()


def test_missing_dataset_file_exits_78_naming_the_file(tmp_path, tiny_bert, s3_prefix, cluster_env):
    missing = f"{s3_prefix}/data/missing.jsonl"
    spec = classification_spec(f"file://{tiny_bert}", missing, None, f"{s3_prefix}/out", f"{s3_prefix}/ckpt")
    config = write_config(tmp_path / "job.json", spec)
    result = run_trainer(config, trainer_env(tmp_path, **cluster_env))
    assert result.returncode == 78, result.stderr[-3000:]
    message = (tmp_path / "termination-log").read_text()
    assert missing in message and "spec.dataset.train" in message
    assert step_losses(result.stderr) == {}
