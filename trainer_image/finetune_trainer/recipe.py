"""The fine-tuning recipe: one worker's whole flow, top to bottom.

Features (and their trade-offs):

- **One configuration, the API's.** The FineTuneJob spec is validated by ``finetune_api`` (the
  same models as the CRD) and mapped onto typed settings; a bad value ends with exit 78 and a
  message naming the field — restarting would not help.
- **HF Trainer, not a hand-written loop.** Accumulation, schedules, precision, DDP and the complete
  resumable state (weights, optimizer, scheduler, RNG, data position) are HF's. We only add a
  class-weighted loss and a head learning rate (``hf_trainer``) and a callback (``callback``).
  Trade-off: we follow HF's checkpoint layout and its resume semantics.
- **Committed checkpoints** (docs/architecture.md, "Checkpoint commit protocol"). Saves happen on
  our schedule (every N steps and/or seconds, and on SIGTERM); uploads run in the background, at
  most one in flight; the manifest is written last; resume downloads the newest checkpoint that
  verifies and passes its explicit local path to ``trainer.train``. Trade-off: a save waits for the
  previous upload, so a slow store bounds the checkpoint frequency instead of piling up uploads.
- **Coordinated stop.** SIGTERM sets a flag that all ranks all-reduce at each step boundary; all
  save the same step, the checkpoint is committed, and the process exits 143
  (docs/architecture.md, "Exit-code contract").
- **Resume with changed settings.** The manifest carries a hash of the model, dataset and training
  sections. A checkpoint written under another hash is refused (exit 78) unless env
  ``FINETUNE_ALLOW_CONFIG_CHANGE=1``; a different world size is allowed (weights, optimizer and
  schedule carry over; the data position is exact only for the same world size).
- **Progress is pulled** (docs/architecture.md, "Progress is pulled"). Rank 0 serves Prometheus
  metrics; logs are JSON lines.
- **Best model.** The metric chosen in ``training.evaluation.metric`` drives best-metric tracking
  and early stopping; the published model is the final one (keeping a best copy would double
  checkpoint storage), and metrics.json reports the best value and its step.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from finetune_api import contract

from . import logs, output, sharding, threads
from .callback import TrainerBridge
from .checkpoints import CheckpointManager, CommitRecord, ResumePoint
from .data import CausalCollator, PreparedData, SampleIdCollator, load_datasets, require_dataset_files
from .distributed import Control, StopFlag, WorldInfo, world_from_env
from .errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PREEMPTED,
    ConfigError,
    Preempted,
    finish,
)
from .evaluation import add_perplexity, make_classification_compute_metrics
from .manifest import config_hash
from .metrics_server import TrainerMetrics, library_versions
from .modeling import build_model, fetch_model_dir, load_tokenizer
from .settings import TrainerSettings, load_settings
from .sharded_checkpoints import agree_on_sharded_resume, check_resume_layout

log = logging.getLogger("finetune_trainer")
UPLOAD_WAIT_SECONDS = float(os.environ.get("FINETUNE_FINAL_UPLOAD_WAIT_SECONDS", "3600"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune_trainer", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="FineTuneJob manifest or spec (YAML/JSON); default: env FINETUNE_JOB_SPEC"
    )
    args = parser.parse_args(argv)

    logs.configure(os.environ.get("FINETUNE_LOG_LEVEL", "INFO"))
    world = world_from_env()
    logs.set_context(rank=world.rank, job=os.environ.get("FINETUNE_JOB_NAME", ""))
    cpu_threads, cpu_source = threads.configure_torch()  # the pod's CPU share, not the node's cores
    logs.event(log, "cpu threads", threads=cpu_threads, source=cpu_source)
    stop = StopFlag()
    stop.install()
    try:
        summary = run(args.config, world, stop)
        # Rank 0's one-line JSON summary lets the operator report the exact final step and metrics.
        return finish(EXIT_OK, json.dumps(summary, sort_keys=True) if world.is_main else "")
    except ConfigError as exc:
        log.error("invalid configuration or data", extra={"fields": {"reason": str(exc)}})
        return finish(EXIT_CONFIG, f"invalid configuration or data: {exc}")
    except Preempted as exc:
        log.warning(str(exc))
        return finish(EXIT_PREEMPTED, str(exc))
    except Exception as exc:
        log.exception("training failed")
        return finish(EXIT_FAILURE, f"training failed (retryable): {type(exc).__name__}: {exc}")


def run(config_path: str | None, world: WorldInfo, stop: StopFlag) -> dict[str, Any]:
    """The whole run; returns the completion summary (see `completion_summary`)."""
    # 1. Configuration and the process group.
    settings = load_settings(config_path)
    logs.set_context(job=settings.job_name)
    control = Control(world)
    work_dir = Path(
        os.environ.get(contract.ENV_WORK_DIR) or Path(tempfile.gettempdir()) / f"finetune-{settings.job_name}"
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    require_dataset_files(settings.dataset)  # a typo in a URI fails in seconds, not after a model download
    cuda = torch.cuda.is_available()
    scaling = sharding.scaling_from_settings(settings, cuda, sharding.bitsandbytes_installed())
    versions = library_versions()

    # 2. Metrics endpoint (rank 0 only), so progress is visible from the first second.
    metrics: TrainerMetrics | None = None
    if world.is_main:
        metrics = TrainerMetrics()
        metrics.set_info(versions, settings.model.task, output.method_of(settings))
        metrics.serve()

    # 3. Model files and tokenizer (one download per node), then the data.
    model_dir = _on_local_main_first(control, world, lambda: fetch_model_dir(settings.model.uri, work_dir))
    tokenizer = load_tokenizer(model_dir, settings.model)
    data = load_datasets(
        settings.dataset,
        settings.model.task,
        tokenizer,
        settings.model.num_labels,
        settings.training.class_weights,
    )
    logs.event(log, "data loaded", **data.sizes)

    # 4. The model: pretrained weights, new head, freezing, LoRA.
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, set_seed

    set_seed(settings.training.seed)
    checkpointing = settings.training.gradient_checkpointing
    model = build_model(
        settings.model, model_dir, data.label_names, torch.float32, gradient_checkpointing=checkpointing
    )
    plan = sharding.plan_distribution(scaling, world, model, cuda, _local_world_size(world))
    sharding.return_freed_buffers_to_the_kernel(plan, cuda)  # CPU FSDP: peak RSS below DDP's

    # 5. Checkpoints: the newest verified one, agreed by all ranks.
    spec_hash = config_hash(settings.spec)
    manager = None
    if settings.checkpoint.uri:
        manager = CheckpointManager(
            settings.checkpoint.uri,
            settings.checkpoint.keep,
            world,
            spec_hash,
            versions,
            settings.job_name,
            on_commit=_commit_reporter(metrics),
            on_upload=_upload_reporter(metrics),
        )
    resume = None
    if manager is not None and plan.is_fsdp:  # each rank fetches only the shards it needs
        resume = agree_on_sharded_resume(manager, control, world, work_dir / "resume", plan)
    elif manager is not None:
        resume = _agree_on_resume(manager, control, world, work_dir / "resume")
    if resume is not None:
        _check_resume_compatible(resume, spec_hash, world, settings)
        check_resume_layout(resume.manifest, resume.uri, plan)
        logs.event(log, "resuming", checkpoint_step=resume.step, uri=resume.uri)
        if metrics is not None:
            metrics.checkpoint_last_step.set(resume.step)

    # 6. HF Trainer with our callback.
    training_args = build_training_args(settings, work_dir / "hf", data, world, plan)
    collator: Any = (
        CausalCollator(tokenizer.pad_token_id)
        if settings.model.task == "causal-lm"
        else DataCollatorWithPadding(tokenizer)
    )
    bridge = TrainerBridge(
        world,
        control,
        stop,
        settings.checkpoint,
        manager,
        metrics,
        total_batch_size=training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * world.world_size,
        task=settings.model.task,
    )
    callbacks: list[Any] = [bridge]
    evaluation = settings.training.evaluation
    if evaluation.early_stopping_patience and data.validation is not None and evaluation.strategy != "no":
        callbacks.append(
            EarlyStoppingCallback(evaluation.early_stopping_patience, evaluation.early_stopping_threshold)
        )
    from .hf_trainer import FinetuneTrainer

    trainer = FinetuneTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        data_collator=SampleIdCollator(collator),
        compute_metrics=make_classification_compute_metrics(data.label_names) if data.label_names else None,
        callbacks=callbacks,
        class_weights=data.class_weights,
        head_learning_rate=settings.training.head_learning_rate
        if settings.model.task != "causal-lm"
        else None,
        task=settings.model.task,
    )

    # 7. Train (resuming from an explicit, verified local path).
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=resume.local_path if resume else None)
    if manager is not None:
        manager.wait(UPLOAD_WAIT_SECONDS)
        manager.close()  # the commit process exits; nothing is left in flight
    if bridge.stopped_at is not None:
        raise Preempted(bridge.stopped_at)

    # 8. Final evaluation on validation and test data.
    final: dict[str, Any] = {
        "train_loss": result.training_loss,
        "train_runtime_seconds": time.monotonic() - started,
    }
    final["global_step"] = trainer.state.global_step
    if trainer.state.global_step < trainer.state.max_steps:  # only early stopping ends a run short
        final["early_stopping_step"] = trainer.state.global_step
        logs.event(
            log,
            "stopped early: the evaluation metric stopped improving",
            step=trainer.state.global_step,
            max_steps=trainer.state.max_steps,
            epoch=trainer.state.epoch,
            metric=evaluation.metric,
            best_metric=trainer.state.best_metric,
        )
    # Perplexity is exp of a per-token loss: meaningful for causal-lm only, not over classes.
    causal = settings.model.task == "causal-lm"
    if data.validation is not None:
        final.update(_finite(add_perplexity(trainer.evaluate(), "eval") if causal else trainer.evaluate()))
    if data.test is not None:
        tested = trainer.evaluate(data.test, metric_key_prefix="test")
        final.update(_finite(add_perplexity(tested, "test") if causal else tested))
    if trainer.state.best_metric is not None:
        final["best_metric"] = trainer.state.best_metric
        final["best_metric_name"] = evaluation.metric
        final["best_step"] = trainer.state.best_global_step

    # 9. Output (rank 0): model, tokenizer, labels, model card, metrics.json last.
    publishable = sharding.publishable_model(  # FSDP: gathered from the shards (all ranks take part)
        trainer,
        plan,
        world,
        lambda: build_model(
            settings.model, model_dir, data.label_names, torch.float32, gradient_checkpointing=checkpointing
        ),
    )
    if world.is_main:
        local_out = work_dir / "output"
        output.save_model(
            publishable, tokenizer, local_out, settings.output.merge_lora, settings.output.save_tokenizer
        )
        output.publish(
            local_out, settings.output.uri, settings, data.sizes, final, versions, data.label_names
        )
    snapshot = os.environ.get("FINETUNE_TEST_METRICS_SNAPSHOT")
    if snapshot and metrics is not None:
        Path(snapshot).write_text(metrics.scrape())
    control.barrier()
    logs.event(log, "training finished", **{k: v for k, v in final.items() if isinstance(v, int | float)})
    control.shutdown()
    return completion_summary(final, trainer.state, settings)


# ---------------------------------------------------------------------------------------------
# Helpers that keep the flow above readable


def completion_summary(final: dict[str, Any], state: Any, settings: TrainerSettings) -> dict[str, Any]:
    """What the operator shows when the job succeeds: exact final step, losses, metrics, output URI.

    Written as one JSON line to the termination message, which Kubernetes caps at 4096 bytes: keep
    only numbers of the final evaluation (not per-class lists) and round them.
    """
    metrics = {
        k: round(float(v), 6) for k, v in final.items() if isinstance(v, int | float) and "runtime" not in k
    }
    summary: dict[str, Any] = {
        contract.SUMMARY_STEP: int(state.global_step),
        contract.SUMMARY_TOTAL_STEPS: int(state.max_steps or state.global_step),
        contract.SUMMARY_EPOCH: round(float(state.epoch or 0.0), 4),
        contract.SUMMARY_TRAIN_LOSS: _last_logged_loss(state),
        contract.SUMMARY_EVAL_LOSS: metrics.get("eval_loss"),
        contract.SUMMARY_BEST_METRIC: metrics.get("best_metric"),
        contract.SUMMARY_METRIC: settings.training.evaluation.metric,
        contract.SUMMARY_METRICS: {k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
        contract.SUMMARY_OUTPUT: settings.output.uri,
    }
    return {k: v for k, v in summary.items() if v is not None}


def _last_logged_loss(state: Any) -> float | None:
    """The last logged training loss (what progress.trainLoss shows), not the run's average."""
    for entry in reversed(getattr(state, "log_history", None) or []):
        if "loss" in entry and isinstance(entry["loss"], int | float) and math.isfinite(entry["loss"]):
            return round(float(entry["loss"]), 6)
    return None


def precision_flags(precision: str) -> dict[str, bool]:
    """bf16/fp16 flags for TrainingArguments; auto: bf16 on a capable GPU, fp16 on others, fp32 on CPU."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return {"bf16": False, "fp16": False}
        return (
            {"bf16": True, "fp16": False} if torch.cuda.is_bf16_supported() else {"bf16": False, "fp16": True}
        )
    if precision in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"spec.training.precision: {precision} needs a GPU; use auto or fp32 on CPU")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def build_training_args(
    settings: TrainerSettings,
    output_dir: Path,
    data: PreparedData,
    world: WorldInfo,
    plan: sharding.ShardingPlan | None = None,
) -> Any:
    from transformers import TrainingArguments

    # The spec's cross-field rules (everySteps with steps, metric fits the task...) held at parse
    # time (finetune_api.spec_rules); only what depends on the data is decided here.
    t = settings.training
    ev = t.evaluation
    eval_strategy = ev.strategy if data.validation is not None else "no"
    best_metric = None
    if eval_strategy != "no":
        best_metric = "loss" if ev.metric == "perplexity" else ev.metric
    warmup: float = t.warmup_steps if t.warmup_steps else t.warmup_ratio
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size_per_device,
        per_device_eval_batch_size=t.eval_batch_size_per_device,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=warmup,
        lr_scheduler_type=t.scheduler,
        optim=t.optimizer,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        **precision_flags(t.precision),
        **sharding.training_arguments(plan, t.gradient_checkpointing),  # fsdp/fsdp_config; checkpointing
        eval_strategy=eval_strategy,
        eval_steps=ev.every_steps if eval_strategy == "steps" else None,
        metric_for_best_model=best_metric,
        greater_is_better=ev.greater_is_better if best_metric else None,
        save_strategy="no",  # saves are requested by the callback (schedule, SIGTERM)
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        # HF's filter logs a NaN/Inf step's loss as a running average (0.0 right after a log), which
        # would hide a diverged run; the true value reaches the metrics, and the operator warns on it.
        logging_nan_inf_filter=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=settings.model.task == "causal-lm",
        include_num_input_tokens_seen="non_padding",
        average_tokens_across_devices=True,  # the global item count our loss divides by (losses.py)
        restore_callback_states_from_checkpoint=True,
        ddp_backend=None if torch.cuda.is_available() else ("gloo" if world.world_size > 1 else None),
        ddp_find_unused_parameters=False,
        use_cpu=not torch.cuda.is_available(),
        log_level="warning",
    )


def _local_world_size(world: WorldInfo) -> int:
    """Ranks on this worker (torchrun's LOCAL_WORLD_SIZE)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", str(world.world_size)))


def _on_local_main_first(control: Control, world: WorldInfo, action: Any) -> Any:
    """Run a download on each node's local rank 0 first, then on the others (which find it cached)."""
    if world.is_local_main:
        value = action()
        control.barrier()
        return value
    control.barrier()
    return action()


def _agree_on_resume(
    manager: CheckpointManager, control: Control, world: WorldInfo, local_root: Path
) -> ResumePoint | None:
    """Rank 0 picks and verifies the newest committed checkpoint; every node downloads that one."""
    point = manager.fetch_newest(local_root) if world.is_main else None
    step = control.broadcast(point.step if point else None)
    if step is None:
        return None
    if point is None and world.is_local_main:
        point = manager.fetch(step, local_root)
    control.barrier()
    return point or manager.describe(step, local_root)


def _check_resume_compatible(
    resume: ResumePoint, spec_hash: str, world: WorldInfo, settings: TrainerSettings
) -> None:
    if resume.manifest.config_hash != spec_hash and os.environ.get("FINETUNE_ALLOW_CONFIG_CHANGE") != "1":
        raise ConfigError(
            f"checkpoint {resume.uri} was written with a different model/dataset/training configuration "
            f"(hash {resume.manifest.config_hash}, now {spec_hash}); use a new spec.checkpoint.uri to start "
            "fresh, or set env FINETUNE_ALLOW_CONFIG_CHANGE=1 to resume anyway"
        )
    if resume.manifest.world_size != world.world_size:
        log.warning(
            "resuming with a different world size; the data position is approximate",
            extra={
                "fields": {
                    "checkpoint_world_size": resume.manifest.world_size,
                    "world_size": world.world_size,
                }
            },
        )


def _commit_reporter(metrics: TrainerMetrics | None) -> Any:
    def report(record: CommitRecord) -> None:
        if metrics is not None:
            metrics.checkpoint_last_step.set(record.step)
            metrics.checkpoint_last_timestamp.set(record.timestamp)

    return report


def _upload_reporter(metrics: TrainerMetrics | None) -> Any:
    def report(seconds: float, size: int) -> None:
        if metrics is not None:
            metrics.checkpoint_upload_duration.set(seconds)
            metrics.checkpoint_upload_bytes.inc(size)

    return report


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not (isinstance(v, float) and not math.isfinite(v))}
