"""Every training option of the API runs for real on a real (tiny) model (issue 14, item 3).

Each test trains ``python -m finetune_trainer`` (alone or two ranks under torchrun, gloo) against
the local S3 server and checks the effect of one option from the outside: the published weights,
the optimizer state in a committed checkpoint, the logged losses, the exit code and logs.
"""

from __future__ import annotations

import json
import math
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from finetune_testkit.trainer_helpers import (
    classification_spec,
    committed_steps,
    json_lines,
    run_trainer,
    s3_test_prefix,
    sentiment_records,
    start_distributed,
    tiny_classification_files,
    trainer_env,
    write_config,
    write_jsonl,
)

RUN_SECONDS = 300


def s3_path(uri: str) -> str:
    return uri.removeprefix("s3://")


def base_spec(model: Path, train: Path, prefix: str, validation: Path | None = None, **training: Any):
    spec = classification_spec(
        f"file://{model}", f"file://{train}", f"file://{validation}" if validation else None,
        f"{prefix}/out", f"{prefix}/ckpt", **training,
    )  # fmt: skip
    spec["model"]["dropout"] = 0.0
    if validation is None:
        spec["dataset"]["split"] = {"validation": 0.0}
        spec["training"]["evaluation"] = {"strategy": "no"}
    return spec


def train(tmp: Path, name: str, spec: dict[str, Any], cluster_env: dict[str, str], **env: str):
    work = tmp / name
    work.mkdir(exist_ok=True)
    result = run_trainer(
        write_config(work / "job.json", spec), trainer_env(work, **cluster_env, **env), timeout=RUN_SECONDS
    )
    return result


def train_two_ranks(tmp: Path, name: str, spec: dict[str, Any], cluster_env: dict[str, str], **env: str):
    work = tmp / name
    work.mkdir(exist_ok=True)
    log = work / "torchrun.log"
    agent = start_distributed(
        "torch.distributed.run",
        write_config(work / "job.json", spec),
        trainer_env(work, **cluster_env, GLOO_SOCKET_IFNAME="lo", **env),
        log,
    )
    try:
        code = agent.wait(timeout=RUN_SECONDS)
    finally:
        if agent.poll() is None:
            agent.kill()
    return code, log.read_text()


def sample_log(path: Path) -> dict[int, list[int]]:
    steps: dict[int, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        steps[record["step"]].extend(record["ids"])
    return steps


# ---------------------------------------------------------------------------------------------
# model.freeze and training.headLearningRate


def test_frozen_parameters_keep_their_weights_and_the_head_has_its_own_learning_rate(
    tmp_path, s3_bucket, s3, cluster_env
):
    model, data = tiny_classification_files(tmp_path, seed=1, count=64)
    prefix = s3_test_prefix(s3_bucket)
    spec = base_spec(
        model, data, prefix, epochs=1, learningRate=1e-2, headLearningRate=5e-2, scheduler="constant"
    )
    spec["model"]["freeze"] = {"embeddings": True, "layers": 1}
    spec["checkpoint"]["everySteps"] = 4
    result = train(tmp_path, "run", spec, cluster_env)
    assert result.returncode == 0, result.stderr[-4000:]

    before = load_file(str(model / "model.safetensors"))
    s3.get_file(s3_path(f"{prefix}/out/model.safetensors"), str(tmp_path / "after.safetensors"))
    after = {k.removeprefix("bert."): v for k, v in load_file(str(tmp_path / "after.safetensors")).items()}
    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))]
    trained = [k for k in before if k.startswith("encoder.layer.1.")]
    assert frozen and trained
    for key in frozen:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    assert all(not torch.equal(after[key], before[key]) for key in trained)

    # The committed optimizer state: the head's tensors in groups of their own learning rate.
    step = committed_steps(result.stderr)[-1]
    s3.get_file(s3_path(f"{prefix}/ckpt/checkpoint-{step}/optimizer.pt"), str(tmp_path / "optimizer.pt"))
    groups = torch.load(tmp_path / "optimizer.pt", weights_only=False)["param_groups"]
    by_lr: dict[float, int] = defaultdict(int)
    for group in groups:
        by_lr[group["lr"]] += len(group["params"])
    assert set(by_lr) == {1e-2, 5e-2}
    assert by_lr[5e-2] == 2  # classifier.weight and classifier.bias
    trainable = len(trained) + 2 + sum(1 for k in before if k.startswith("pooler."))
    assert by_lr[1e-2] == trainable - 2  # frozen tensors are in no group at all


# ---------------------------------------------------------------------------------------------
# training.classWeights


def weighted_losses(model_dir: Path, records: list[dict[str, str]], steps: dict[int, list[int]], weights):
    """The loss each step should log: sum of w[y] * cross-entropy over its samples / their number."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    classifier = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    label_ids = {name: int(i) for i, name in classifier.config.id2label.items()}
    expected = {}
    with torch.no_grad():
        for step, ids in steps.items():
            batch = tokenizer(
                [records[i]["text"] for i in ids],
                padding=True,
                truncation=True,
                max_length=16,
                return_tensors="pt",
            )
            labels = torch.tensor([label_ids[records[i]["label"]] for i in ids])
            losses = torch.nn.functional.cross_entropy(classifier(**batch).logits, labels, reduction="none")
            expected[step] = float((torch.tensor(weights)[labels] * losses).sum() / len(ids))
    return expected


@pytest.mark.parametrize("mode", ["auto", "explicit"])
def test_the_class_weighted_loss_is_what_is_optimised(tmp_path, s3_bucket, s3, cluster_env, mode):
    model, data = tiny_classification_files(tmp_path, seed=1, count=48)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    prefix = s3_test_prefix(s3_bucket)
    # A learning rate too small to move the weights: every step's loss is the published model's.
    spec = base_spec(model, data, prefix, epochs=1, learningRate=1e-12, scheduler="constant")
    spec["training"]["classWeights"] = mode
    names = sorted({r["label"] for r in records})  # labels are sorted names: neg=0, pos=1
    if mode == "explicit":
        weights = [0.25, 3.0]
        spec["training"]["classWeightValues"] = weights
    else:
        counts = [sum(1 for r in records if r["label"] == n) for n in names]
        weights = [len(records) / (len(names) * c) for c in counts]
    result = train(tmp_path, "run", spec, cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(tmp_path / "samples"))
    assert result.returncode == 0, result.stderr[-4000:]
    logged = {
        r["step"]: r["loss"] for r in json_lines(result.stderr) if r.get("msg") == "train log" and "loss" in r
    }

    out = tmp_path / "out"
    s3.get(s3_path(f"{prefix}/out") + "/", str(out), recursive=True)
    expected = weighted_losses(out, records, sample_log(tmp_path / "samples"), weights)
    unweighted = weighted_losses(out, records, sample_log(tmp_path / "samples"), [1.0, 1.0])
    assert sorted(logged) == sorted(expected) == list(range(1, 7))
    for step in expected:
        assert logged[step] == pytest.approx(expected[step], rel=1e-4), step
    assert any(abs(unweighted[s] - expected[s]) > 1e-3 for s in expected)  # the weights mattered
    metrics = json.loads((out / "metrics.json").read_text())
    assert not any("perplexity" in key for key in metrics)  # no perplexity over classes


# ---------------------------------------------------------------------------------------------
# training.evaluation.earlyStopping


def test_early_stopping_stops_before_the_last_epoch_and_says_so(tmp_path, s3_bucket, s3, cluster_env):
    model, data = tiny_classification_files(tmp_path, seed=1, count=32)
    validation = write_jsonl(tmp_path / "val.jsonl", sentiment_records(16, seed=2))
    prefix = s3_test_prefix(s3_bucket)
    # The weights barely move, so the validation loss cannot improve by the threshold.
    spec = base_spec(model, data, prefix, validation, epochs=6, learningRate=1e-9, scheduler="constant")
    spec["training"]["loggingSteps"] = 4
    spec["training"]["evaluation"] = {
        "strategy": "epoch", "metric": "loss", "earlyStopping": {"patience": 1, "threshold": 0.01},
    }  # fmt: skip
    result = train(tmp_path, "run", spec, cluster_env)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = json_lines(result.stderr)
    stopped = [r for r in lines if r.get("msg", "").startswith("stopped early")]
    assert len(stopped) == 1, result.stderr[-3000:]
    assert stopped[0]["step"] == 8 < stopped[0]["max_steps"] == 24  # after epoch 2 of 6 (4 steps each)
    metrics = json.loads(s3.cat_file(s3_path(f"{prefix}/out/metrics.json")))
    assert metrics["early_stopping_step"] == 8 and metrics["global_step"] == 8


# ---------------------------------------------------------------------------------------------
# output.mergeLora: false


def test_adapter_only_output_loads_with_peft(tmp_path, s3_bucket, s3, cluster_env):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    model, data = tiny_classification_files(tmp_path, seed=1, count=48)
    prefix = s3_test_prefix(s3_bucket)
    spec = base_spec(model, data, prefix, epochs=1, learningRate=1e-2)
    spec["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0, "targetModules": ["query", "value"]}
    spec["output"]["mergeLora"] = False
    result = train(tmp_path, "run", spec, cluster_env)
    assert result.returncode == 0, result.stderr[-4000:]

    out = tmp_path / "out"
    s3.get(s3_path(f"{prefix}/out") + "/", str(out), recursive=True)
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    base = AutoModelForSequenceClassification.from_pretrained(str(model), num_labels=2)
    adapted = PeftModel.from_pretrained(base, str(out)).eval()
    lora_tensors = [n for n, _ in adapted.named_parameters() if "lora_" in n]
    assert lora_tensors
    with torch.no_grad():
        logits = adapted(input_ids=torch.tensor([[2, 10, 3]])).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


# ---------------------------------------------------------------------------------------------
# Resume: a changed configuration hash, another world size, the exact data position on 2 ranks


def test_changed_configuration_is_refused_unless_allowed(tmp_path, s3_bucket, s3, cluster_env):
    model, data = tiny_classification_files(tmp_path, seed=1, count=64)
    prefix = s3_test_prefix(s3_bucket)
    spec = base_spec(model, data, prefix, epochs=1, learningRate=5e-3)
    spec["checkpoint"]["everySteps"] = 3
    killed = train(tmp_path, "first", spec, cluster_env, FINETUNE_TEST_KILL_AFTER_COMMIT_STEP="3")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    changed = json.loads(json.dumps(spec))
    changed["training"]["learningRate"] = 1e-3
    refused = train(tmp_path, "changed", changed, cluster_env)
    assert refused.returncode == 78, refused.stderr[-3000:]
    message = (tmp_path / "changed" / "termination-log").read_text()
    assert "different model/dataset/training configuration" in message
    assert "FINETUNE_ALLOW_CONFIG_CHANGE=1" in message

    allowed = train(tmp_path, "allowed", changed, cluster_env, FINETUNE_ALLOW_CONFIG_CHANGE="1")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    resumed = [r["checkpoint_step"] for r in json_lines(allowed.stderr) if r.get("msg") == "resuming"]
    assert resumed == [3]


def test_two_rank_resume_is_exact_and_another_world_size_continues(tmp_path, s3_bucket, s3, cluster_env):
    count, per_rank = 96, 4  # 12 steps per epoch at 2 ranks
    model, data = tiny_classification_files(tmp_path, seed=1, count=count)
    prefix = s3_test_prefix(s3_bucket)
    spec = base_spec(model, data, prefix, epochs=2, batchSizePerDevice=per_rank, learningRate=5e-3)
    spec["checkpoint"]["everySteps"] = 5
    samples = tmp_path / "samples"

    # Two ranks, killed right after the commit of step 5 (mid-epoch), then resumed on two ranks.
    code, text = train_two_ranks(
        tmp_path, "first", spec, cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(samples),
        FINETUNE_TEST_KILL_AFTER_COMMIT_STEP="5",
    )  # fmt: skip
    assert code != 0 and committed_steps(text) == [5], text[-3000:]
    first = {s: ids for s, ids in sample_log(samples).items() if s <= 5}
    samples.unlink()
    code, text = train_two_ranks(
        tmp_path, "second", spec, cluster_env, FINETUNE_TEST_SAMPLE_LOG=str(samples),
        FINETUNE_TEST_KILL_AFTER_COMMIT_STEP="15",
    )  # fmt: skip
    assert 15 in committed_steps(text), text[-3000:]
    resumed = {r["rank"]: r["checkpoint_step"] for r in json_lines(text) if r.get("msg") == "resuming"}
    assert resumed == {0: 5, 1: 5}
    second = sample_log(samples)
    assert min(second) == 6
    epoch0 = [i for s in range(1, 13) for i in (first | second)[s]]
    assert sorted(epoch0) == list(range(count))  # across both ranks: none twice, none skipped

    # One rank resumes the two-rank checkpoint of step 15: warned, and it trains to the end.
    single = train(tmp_path, "single", spec, cluster_env)
    assert single.returncode == 0, single.stderr[-3000:]
    lines = json_lines(single.stderr)
    assert [r["checkpoint_step"] for r in lines if r.get("msg") == "resuming"] == [15]
    warned = [r for r in lines if r.get("msg", "").startswith("resuming with a different world size")]
    assert warned and warned[0]["checkpoint_world_size"] == 2 and warned[0]["world_size"] == 1
    losses = [r["loss"] for r in lines if r.get("msg") == "train log" and "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    finished = [r for r in lines if r.get("msg") == "training finished"]
    assert finished and finished[0]["global_step"] > 15
