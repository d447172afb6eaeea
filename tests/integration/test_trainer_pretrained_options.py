"""model.revision and model.trustRemoteCode reach transformers' from_pretrained (issue 13, item 15).

Both are shown on real loads, without a network: the revision through an offline Hugging Face cache
that holds two revisions of one hf:// model (refs/main and refs/v2 point at different snapshots), the
remote-code opt-in through a model directory whose config names its own Python classes (auto_map).
Each load runs in a fresh interpreter so the cache and module directories are private to the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from finetune_testkit.trainer_helpers import REPO, write_tiny_bert

LOAD = """
import json, sys
from finetune_api import parse_spec
from finetune_trainer.errors import ConfigError
from finetune_trainer.modeling import fetch_model_dir, load_model, load_tokenizer
from finetune_trainer.settings import settings_from_spec
import torch

settings = settings_from_spec(parse_spec(json.loads(sys.argv[1])))
model_dir = fetch_model_dir(settings.model.uri, None)
try:
    tokenizer = load_tokenizer(model_dir, settings.model)
    model = load_model(settings.model, model_dir, None, torch.float32)
except ConfigError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({
        "class": type(model).__name__,
        "hidden": model.config.hidden_size,
        "vocab": len(tokenizer),
    }))
"""


def _spec(uri: str, **model: object) -> dict:
    return {
        "model": {"uri": uri, "task": "sequence-classification", "numLabels": 2, **model},
        "dataset": {"train": "file:///unused.jsonl"},
        "output": {"uri": "file:///unused-output"},
    }


def _load(spec: dict, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("api", "trainer_image")),
    }
    done = subprocess.run(
        [sys.executable, "-c", LOAD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cache_revision(hub: Path, repo: str, ref: str, commit: str, source: Path) -> None:
    """Lay out one revision the way huggingface_hub caches it: refs/<ref> -> snapshots/<commit>/."""
    root = hub / f"models--{repo.replace('/', '--')}"
    shutil.copytree(source, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(commit)


def test_revision_selects_the_snapshot(tmp_path):
    hub = tmp_path / "hub"
    _cache_revision(hub, "acme/tiny", "main", "a" * 40, write_tiny_bert(tmp_path / "main", hidden=32))
    _cache_revision(hub, "acme/tiny", "v2", "b" * 40, write_tiny_bert(tmp_path / "v2", hidden=48))

    assert _load(_spec("hf://acme/tiny"), tmp_path)["hidden"] == 32
    assert _load(_spec("hf://acme/tiny", revision="v2"), tmp_path)["hidden"] == 48


CONFIGURATION = """
from transformers import BertConfig


class RemoteBertConfig(BertConfig):
    model_type = "remote-bert"
"""

MODELING = """
from transformers import BertForSequenceClassification

from .configuration_remote import RemoteBertConfig


class RemoteBertForSequenceClassification(BertForSequenceClassification):
    config_class = RemoteBertConfig
"""


def _remote_code_model(directory: Path) -> Path:
    """A tiny BERT whose config.json maps the Auto classes onto code shipped in the directory."""
    write_tiny_bert(directory)
    (directory / "configuration_remote.py").write_text(CONFIGURATION)
    (directory / "modeling_remote.py").write_text(MODELING)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "remote-bert"
    config["auto_map"] = {
        "AutoConfig": "configuration_remote.RemoteBertConfig",
        "AutoModelForSequenceClassification": "modeling_remote.RemoteBertForSequenceClassification",
    }
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_trust_remote_code_runs_the_shipped_code_only_when_allowed(tmp_path):
    model = _remote_code_model(tmp_path / "remote")

    refused = _load(_spec(f"file://{model}"), tmp_path)
    assert "trust_remote_code" in refused["error"] and "spec.model.uri" in refused["error"]

    loaded = _load(_spec(f"file://{model}", trustRemoteCode=True), tmp_path)
    assert loaded["class"] == "RemoteBertForSequenceClassification"
