"""The final artefacts at output.uri: model, tokenizer, label mapping, metrics.json, model card.

Written on rank 0 into a local directory first and then uploaded file by file, with
``metrics.json`` last so its presence means the output is complete. LoRA models are merged into
the base weights when ``output.mergeLora`` (a standalone model that loads with plain
transformers); otherwise only the adapter is saved (load it with peft on top of the base model).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from . import storage
from .settings import TrainerSettings

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
LABELS_FILE = "labels.json"


def method_of(settings: TrainerSettings) -> str:
    if settings.model.lora is not None:
        return "lora"
    if settings.model.freeze_embeddings or settings.model.freeze_layers:
        return "partial (frozen lower layers)"
    return "full"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_model_card(
    settings: TrainerSettings,
    sizes: Mapping[str, int],
    metrics: Mapping[str, Any],
    versions: Mapping[str, str],
    label_names: Sequence[str] | None,
) -> str:
    """A README.md for the output directory (pure)."""
    t = settings.training
    lines = [
        f"# {settings.job_name}",
        "",
        f"Fine-tuned from `{settings.model.uri}` by finetune-operator.",
        "",
        "## Model",
        "",
        f"- base model: `{settings.model.uri}`",
        f"- task: {settings.model.task}",
        f"- method: {method_of(settings)}",
    ]
    if settings.model.lora is not None:
        lora = settings.model.lora
        lines.append(
            f"- LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, targets={lora.target_modules}, "
            f"{'merged into the weights' if settings.output.merge_lora else 'adapter only'}"
        )
    if label_names:
        lines.append(f"- labels: {', '.join(label_names)}")
    lines += ["", "## Data", ""]
    lines += [f"- {name}: {count} examples" for name, count in sizes.items()]
    lines += [
        "",
        "## Hyperparameters",
        "",
        f"- epochs: {_fmt(t.epochs)}" + (f" (max steps {t.max_steps})" if t.max_steps else ""),
        f"- batch size per device: {t.batch_size_per_device}, "
        f"gradient accumulation: {t.gradient_accumulation_steps}",
        f"- learning rate: {t.learning_rate}"
        + (f", head learning rate: {t.head_learning_rate}" if t.head_learning_rate else ""),
        f"- scheduler: {t.scheduler}, warmup steps: {t.warmup_steps}, weight decay: {t.weight_decay}",
        f"- precision: {t.precision}, seed: {t.seed}",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in sorted(metrics.items())]
    lines += ["", "## Software", ""]
    lines += [f"- {name} {version}" for name, version in sorted(versions.items())]
    return "\n".join(lines) + "\n"


def save_model(
    model: nn.Module, tokenizer: Any, local_dir: Path, merge_lora: bool, save_tokenizer: bool
) -> None:
    """Write the model (merged or adapter) and tokenizer in save_pretrained layout."""
    shutil.rmtree(local_dir, ignore_errors=True)
    local_dir.mkdir(parents=True)
    to_save = model
    if hasattr(model, "peft_config") and merge_lora:
        to_save = model.merge_and_unload()
    to_save.save_pretrained(str(local_dir), safe_serialization=True)
    if save_tokenizer and tokenizer is not None:
        tokenizer.save_pretrained(str(local_dir))


def publish(
    local_dir: Path,
    output_uri: str,
    settings: TrainerSettings,
    sizes: Mapping[str, int],
    metrics: Mapping[str, Any],
    versions: Mapping[str, str],
    label_names: Sequence[str] | None,
) -> None:
    """Add labels, model card and metrics to the local directory and upload it (metrics.json last)."""
    if label_names:
        (local_dir / LABELS_FILE).write_text(
            json.dumps(
                {
                    "id2label": dict(enumerate(label_names)),
                    "label2id": {n: i for i, n in enumerate(label_names)},
                },
                indent=2,
            )
        )
    if settings.output.write_model_card:
        (local_dir / "README.md").write_text(
            render_model_card(settings, sizes, metrics, versions, label_names)
        )
    (local_dir / METRICS_FILE).write_text(json.dumps(dict(metrics), indent=2, sort_keys=True, default=float))
    files = [(rel, path) for rel, path in storage.walk_files(local_dir) if rel != METRICS_FILE]
    for rel, path in [*files, (METRICS_FILE, local_dir / METRICS_FILE)]:
        storage.upload_file(path, storage.join(output_uri, rel))
    log.info("output written", extra={"fields": {"uri": output_uri, "files": len(files) + 1}})
