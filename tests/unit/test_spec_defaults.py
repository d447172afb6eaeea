"""Every default lives once, in finetune_api: the trainer and the operator use exactly that value.

The API models are walked for every field that has a default; each must appear in the table below
with the value the trainer's settings and/or the operator's JobView and built Job use when the
field is absent from a manifest. A new defaulted field fails here until someone says who reads it,
so a second default (a `.get(key, 3)` or a dataclass default) cannot creep back unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from finetune_api import FineTuneJobSpec, parse_spec
from finetune_operator.job.builders import build_job
from finetune_operator.job.jobview import JobView
from finetune_operator.settings import Settings
from finetune_trainer.settings import TrainerSettings, settings_from_spec
from finetune_trainer.sharding import scaling_from_settings

# Optional sections (absent by default) are switched on empty, so their own defaults show too.
MINIMAL = {
    "model": {"uri": "file:///m", "task": "sequence-classification", "numLabels": 2, "lora": {}},
    "dataset": {"train": "file:///train.jsonl"},
    "training": {"evaluation": {"earlyStopping": {}}},
    "output": {"uri": "file:///out"},
}
SETTINGS = Settings()

TrainerRead = Callable[[TrainerSettings], Any]
OperatorRead = Callable[[JobView, dict[str, Any]], Any]  # (job view, its Job of attempt 1)
SAME = object()  # expected value: the API default itself


def _pod(built: dict[str, Any]) -> dict[str, Any]:
    return built["spec"]["template"]["spec"]


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["containers"][0]


def _env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in _container(pod)["env"]}


def _scratch_sizes(built: dict[str, Any]) -> Any:
    """The one scratch size the Job uses (request, limit, emptyDir sizeLimit), or all when they differ."""
    pod = _pod(built)
    resources = _container(pod)["resources"]
    sizes = {
        resources["requests"]["ephemeral-storage"],
        resources["limits"]["ephemeral-storage"],
        *(volume["emptyDir"]["sizeLimit"] for volume in pod["volumes"] if "emptyDir" in volume),
    }
    return sizes.pop() if len(sizes) == 1 else sizes


def _scaling(t: TrainerSettings) -> Any:
    """The trainer's distribution and quantization settings, as on a GPU worker with bitsandbytes."""
    return scaling_from_settings(t, cuda=True, bitsandbytes=True)


def _qlora() -> Any:
    """model.quantization switched on empty (it needs GPUs): what the trainer's QLoRA loading reads."""
    spec = {**MINIMAL, "model": {**MINIMAL["model"], "quantization": {}}, "resources": {"gpusPerWorker": 1}}
    return _scaling(settings_from_spec(parse_spec(spec))).quantization


# path -> (trainer reads, operator reads, expected when it is not the API default itself)
READERS: dict[str, tuple[TrainerRead | None, OperatorRead | None, Any]] = {
    "model.numLabels": (lambda t: t.model.num_labels, None, 2),  # required by a rule for this task
    "model.labels": (lambda t: t.model.labels, None, SAME),
    "model.revision": (lambda t: t.model.revision, None, SAME),
    "model.freeze.embeddings": (lambda t: t.model.freeze_embeddings, None, SAME),
    "model.freeze.layers": (lambda t: t.model.freeze_layers, None, SAME),
    "model.lora": (lambda t: t.model.lora is not None, None, True),  # switched on in MINIMAL
    "model.lora.r": (lambda t: t.model.lora.r, None, SAME),
    "model.lora.alpha": (lambda t: t.model.lora.alpha, None, SAME),
    "model.lora.dropout": (lambda t: t.model.lora.dropout, None, SAME),
    "model.lora.targetModules": (lambda t: t.model.lora.target_modules, None, "all-linear"),
    "model.lora.bias": (lambda t: t.model.lora.bias, None, SAME),
    "model.quantization": (lambda t: _scaling(t).quantization, None, SAME),
    "model.quantization.bits": (lambda t: _qlora().bits, None, SAME),
    "model.quantization.type": (lambda t: _qlora().type, None, SAME),
    "model.quantization.doubleQuant": (lambda t: _qlora().double_quant, None, SAME),
    "model.quantization.computeDtype": (lambda t: _qlora().compute_dtype, None, SAME),
    "model.dropout": (lambda t: t.model.dropout, None, SAME),
    "model.trustRemoteCode": (lambda t: t.model.trust_remote_code, None, SAME),
    "dataset.validation": (lambda t: t.dataset.validation, None, SAME),
    "dataset.test": (lambda t: t.dataset.test, None, SAME),
    "dataset.format": (lambda t: t.dataset.format, None, SAME),
    "dataset.textField": (lambda t: t.dataset.text_field, None, SAME),
    "dataset.textPairField": (lambda t: t.dataset.text_pair_field, None, SAME),
    "dataset.labelField": (lambda t: t.dataset.label_field, None, SAME),
    "dataset.promptField": (lambda t: t.dataset.prompt_field, None, SAME),
    "dataset.responseField": (lambda t: t.dataset.response_field, None, SAME),
    "dataset.maxLength": (lambda t: t.dataset.max_length, None, SAME),
    "dataset.split.validation": (lambda t: t.dataset.split_validation, None, SAME),
    "dataset.split.test": (lambda t: t.dataset.split_test, None, SAME),
    "dataset.split.seed": (lambda t: t.dataset.split_seed, None, SAME),
    "training.epochs": (lambda t: t.training.epochs, None, SAME),
    "training.maxSteps": (lambda t: t.training.max_steps, None, SAME),
    "training.learningRate": (lambda t: t.training.learning_rate, None, SAME),
    "training.headLearningRate": (lambda t: t.training.head_learning_rate, None, SAME),
    "training.batchSizePerDevice": (lambda t: t.training.batch_size_per_device, None, SAME),
    # Documented default: batchSizePerDevice (resolved by the API model, not by the trainer).
    "training.evalBatchSizePerDevice": (
        lambda t: t.training.eval_batch_size_per_device,
        None,
        parse_spec(MINIMAL).training.batch_size_per_device,
    ),
    "training.gradientAccumulationSteps": (lambda t: t.training.gradient_accumulation_steps, None, SAME),
    "training.gradientCheckpointing": (lambda t: t.training.gradient_checkpointing, None, SAME),
    "training.weightDecay": (lambda t: t.training.weight_decay, None, SAME),
    "training.warmupSteps": (lambda t: t.training.warmup_steps, None, SAME),
    "training.warmupRatio": (lambda t: t.training.warmup_ratio, None, SAME),
    "training.scheduler": (lambda t: t.training.scheduler, None, SAME),
    "training.optimizer": (lambda t: t.training.optimizer, None, SAME),
    "training.maxGradNorm": (lambda t: t.training.max_grad_norm, None, SAME),
    "training.precision": (lambda t: t.training.precision, None, SAME),
    "training.seed": (lambda t: t.training.seed, None, SAME),
    "training.classWeights": (lambda t: t.training.class_weights, None, None),  # "none": no weights
    "training.classWeightValues": (lambda t: t.training.class_weights, None, None),
    "training.distribution.strategy": (lambda t: _scaling(t).distribution.strategy, None, SAME),
    "training.distribution.sharding": (lambda t: _scaling(t).distribution.sharding, None, SAME),
    "training.distribution.cpuOffload": (lambda t: _scaling(t).distribution.cpu_offload, None, SAME),
    "training.distribution.autoWrapLayers": (
        lambda t: _scaling(t).distribution.auto_wrap_layers,
        None,
        SAME,
    ),
    "training.loggingSteps": (lambda t: t.training.logging_steps, None, SAME),
    "training.evaluation.strategy": (lambda t: t.training.evaluation.strategy, None, SAME),
    "training.evaluation.everySteps": (lambda t: t.training.evaluation.every_steps, None, SAME),
    "training.evaluation.metric": (
        lambda t: t.training.evaluation.metric,
        lambda job, built: job.evaluation_metric,
        SAME,
    ),
    # Documented default: false for loss and perplexity (the default metric is loss).
    "training.evaluation.greaterIsBetter": (lambda t: t.training.evaluation.greater_is_better, None, False),
    "training.evaluation.earlyStopping": (
        lambda t: t.training.evaluation.early_stopping_patience is not None,
        None,
        True,  # switched on in MINIMAL
    ),
    "training.evaluation.earlyStopping.patience": (
        lambda t: t.training.evaluation.early_stopping_patience,
        None,
        SAME,
    ),
    "training.evaluation.earlyStopping.threshold": (
        lambda t: t.training.evaluation.early_stopping_threshold,
        None,
        SAME,
    ),
    "resources.workers": (None, lambda job, built: (job.workers, built["spec"]["completions"]), (1, 1)),
    "resources.gpusPerWorker": (None, lambda job, built: job.gpus_per_worker, SAME),
    "resources.gpuResource": (None, lambda job, built: job.gpu_resource, SAME),
    "resources.cpu": (
        None,
        lambda job, built: _container(_pod(built))["resources"].get("requests", {}).get("cpu"),
        SAME,
    ),
    "resources.memory": (
        None,
        lambda job, built: _container(_pod(built))["resources"].get("requests", {}).get("memory"),
        SAME,
    ),
    # Scratch space: the container's ephemeral-storage request and limit and the emptyDir's sizeLimit.
    "resources.ephemeralStorage": (
        None,
        lambda job, built: _scratch_sizes(built),
        SAME,
    ),
    "resources.nodeSelector": (None, lambda job, built: _pod(built).get("nodeSelector", {}), SAME),
    "resources.tolerations": (None, lambda job, built: _pod(built).get("tolerations", []), SAME),
    "resources.affinity": (None, lambda job, built: _pod(built).get("affinity"), SAME),
    "resources.priorityClassName": (None, lambda job, built: _pod(built).get("priorityClassName"), SAME),
    # Documented default: <output.uri>/checkpoints, resolved once (JobView) and handed to the trainer.
    "checkpoint.uri": (
        lambda t: t.checkpoint.uri,
        lambda job, built: job.checkpoint_uri,
        "file:///out/checkpoints",
    ),
    "checkpoint.everySteps": (lambda t: t.checkpoint.every_steps, None, SAME),
    "checkpoint.everySeconds": (lambda t: t.checkpoint.every_seconds, None, SAME),
    "checkpoint.keep": (lambda t: t.checkpoint.keep, None, SAME),
    "output.mergeLora": (lambda t: t.output.merge_lora, None, SAME),
    "output.saveTokenizer": (lambda t: t.output.save_tokenizer, None, SAME),
    "output.writeModelCard": (lambda t: t.output.write_model_card, None, SAME),
    "storage.secretRef": (None, lambda job, built: job.parsed.storage.secret_ref, SAME),
    "storage.endpoint": (None, lambda job, built: _env(_pod(built)).get("AWS_ENDPOINT_URL"), SAME),
    "storage.region": (None, lambda job, built: _env(_pod(built)).get("AWS_DEFAULT_REGION"), SAME),
    # Documented default: the operator's default trainer image.
    "image": (None, lambda job, built: _container(_pod(built))["image"], SETTINGS.default_image),
    "runPolicy.maxRestarts": (None, lambda job, built: job.max_restarts, SAME),
    "runPolicy.backoffSeconds": (None, lambda job, built: job.backoff_seconds, SAME),
    "runPolicy.activeDeadlineSeconds": (None, lambda job, built: job.active_deadline_seconds, SAME),
    "runPolicy.ttlSecondsAfterFinished": (None, lambda job, built: job.ttl_seconds_after_finished, SAME),
    "runPolicy.suspend": (None, lambda job, built: job.suspend, SAME),
    "runPolicy.terminationGracePeriodSeconds": (
        None,
        lambda job, built: (
            job.termination_grace_period_seconds,
            _pod(built)["terminationGracePeriodSeconds"],
        ),
        (300, 300),
    ),
}


def _camel(name: str, model: type[BaseModel]) -> str:
    alias = model.model_fields[name].alias
    return alias or name


def defaulted_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(camelCase path, API default) of every field with a default, nested sections included."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{_camel(name, model)}"
        annotation = info.annotation
        nested = _model_in(annotation)
        if info.is_required():
            if nested is not None:
                yield from defaulted_fields(nested, f"{path}.")
            continue
        default = info.default if info.default is not PydanticUndefined else info.default_factory()
        if isinstance(default, BaseModel):  # a section whose fields all have defaults
            yield from defaulted_fields(type(default), f"{path}.")
            continue
        yield path, default
        if nested is not None:  # an optional section (absent by default): its own defaults
            yield from defaulted_fields(nested, f"{path}.")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The section model of `Section` or `Section | None` (not of lists: their items have no path)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, dict):
        return None
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


DEFAULTED = dict(defaulted_fields(FineTuneJobSpec))


def test_every_defaulted_field_has_a_known_reader():
    unknown = sorted(set(DEFAULTED) - set(READERS))
    assert not unknown, (
        f"spec fields {unknown} have API defaults but no entry in READERS: add what the trainer "
        "settings and/or the operator's JobView read for them"
    )
    stale = sorted(set(READERS) - set(DEFAULTED))
    assert not stale, f"READERS names fields that no longer have defaults: {stale}"


@pytest.fixture(scope="module")
def used() -> tuple[TrainerSettings, JobView, dict[str, Any]]:
    parsed = parse_spec(MINIMAL)
    trainer = settings_from_spec(parsed)
    body = {"metadata": {"name": "defaults", "namespace": "ns", "uid": "u-1"}, "spec": MINIMAL}
    job = JobView.from_body(body)
    return trainer, job, build_job(job, 1, SETTINGS)


@pytest.mark.parametrize("path", sorted(set(DEFAULTED) & set(READERS)))
def test_trainer_and_operator_use_the_api_default(path, used):
    trainer, job, built = used
    read_trainer, read_operator, expected = READERS[path]
    if expected is SAME:
        expected = DEFAULTED[path]
    assert read_trainer or read_operator, f"{path}: name at least one reader"
    if read_trainer is not None:
        assert read_trainer(trainer) == expected, f"{path}: the trainer uses another value"
    if read_operator is not None:
        assert read_operator(job, built) == expected, f"{path}: the operator uses another value"


def test_no_default_in_the_trainer_settings():
    """The trainer's typed groups declare no defaults of their own (they copy the parsed spec)."""
    import dataclasses

    from finetune_trainer import settings as trainer_settings

    groups = [
        trainer_settings.ModelSettings,
        trainer_settings.LoraSettings,
        trainer_settings.DatasetSettings,
        trainer_settings.TrainingSettings,
        trainer_settings.EvaluationSettings,
        trainer_settings.CheckpointSettings,
        trainer_settings.OutputSettings,
        trainer_settings.TrainerSettings,
    ]
    with_defaults = [
        f"{group.__name__}.{f.name}"
        for group in groups
        for f in dataclasses.fields(group)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    ]
    assert with_defaults == []
