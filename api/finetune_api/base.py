"""The base classes every API model derives from.

Python code uses snake_case attributes; manifests use Kubernetes camelCase. Unknown keys in a spec
are refused (`extra="forbid"`) so that a typo in a manifest or a trainer config fails loudly instead
of silently falling back to a default. Each spec model may declare cross-field `RULES` (see
rules.py); they run after the fields validated, and the CRD generator copies their CEL twins.
"""

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

from finetune_api.rules import Rule, check_rules


def _add_cel_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """JSON-schema hook: the model's cross-field rules become x-kubernetes-validations in the CRD."""
    rules: tuple[Rule, ...] = getattr(model, "RULES", ())
    if rules:
        schema["x-kubernetes-validations"] = [rule.to_crd() for rule in rules if rule.cel is not None]


class ApiModel(BaseModel):
    """A section of the FineTuneJob spec: camelCase on the wire, snake_case in Python, no unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", json_schema_extra=_add_cel_rules
    )

    RULES: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> Self:
        check_rules(self, type(self).RULES)
        return self


class StatusModel(BaseModel):
    """A section of the status: camelCase like ApiModel, but tolerant of keys written by newer operators."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
