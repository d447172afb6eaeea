"""Which spec fields may change after a job was created, and the CEL rules that enforce it.

Changing the model, the data, the hyperparameters or the gang shape mid-run would silently mix two
different trainings in one checkpoint history, so all of the spec is immutable except the lifecycle
knobs a user legitimately turns while a job lives: runPolicy.suspend, runPolicy.activeDeadlineSeconds
and runPolicy.ttlSecondsAfterFinished. New fields are immutable by default (derived from the models).

The rules are attached to the `spec` of the FineTuneJob CRD (not to FineTuneJobSpec itself), so a
spec embedded in another resource, such as a schedule's job template, stays editable.
"""

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from finetune_api.constants import IMMUTABLE_SUFFIX
from finetune_api.errors import FieldError
from finetune_api.runtime import RunPolicy
from finetune_api.spec import FineTuneJobSpec

MUTABLE_RUN_POLICY_FIELDS = ("suspend", "active_deadline_seconds", "ttl_seconds_after_finished")


def _alias(field_name: str, info: FieldInfo) -> str:
    return info.alias or field_name


def _always_present(info: FieldInfo) -> bool:
    """Present in every stored object: required, or defaulted to a non-null value by the API server."""
    return info.is_required() or info.default_factory is not None or info.default is not None


def immutable_fields() -> list[tuple[str, bool]]:
    """(camelCase path relative to spec, always present) of every immutable field, in model order."""
    fields: list[tuple[str, bool]] = []
    for name, info in FineTuneJobSpec.model_fields.items():
        if info.annotation is RunPolicy:
            continue
        fields.append((_alias(name, info), _always_present(info)))
    run_policy = _alias("run_policy", FineTuneJobSpec.model_fields["run_policy"])
    for name, info in RunPolicy.model_fields.items():
        if name not in MUTABLE_RUN_POLICY_FIELDS:
            fields.append((f"{run_policy}.{_alias(name, info)}", _always_present(info)))
    return fields


def _cel(path: str, always_present: bool) -> str:
    if always_present:
        return f"self.{path} == oldSelf.{path}"
    return f"has(self.{path}) == has(oldSelf.{path}) && (!has(self.{path}) || self.{path} == oldSelf.{path})"


def immutability_rules() -> list[dict[str, str]]:
    """x-kubernetes-validations transition rules for the CRD's spec."""
    return [
        {"rule": _cel(path, present), "message": f"{path} {IMMUTABLE_SUFFIX}", "fieldPath": f".{path}"}
        for path, present in immutable_fields()
    ]


def _lookup(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def immutable_changes(old: BaseModel, new: BaseModel, *, prefix: str = "spec") -> list[FieldError]:
    """The immutable fields that differ between two parsed specs (empty when the update is allowed)."""
    old_data = old.model_dump(by_alias=True, mode="json")
    new_data = new.model_dump(by_alias=True, mode="json")
    return [
        FieldError(f"{prefix}.{path}", f"{path} {IMMUTABLE_SUFFIX}")
        for path, _ in immutable_fields()
        if _lookup(old_data, path) != _lookup(new_data, path)
    ]
