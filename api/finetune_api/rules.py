"""Cross-field rules, each written once with both its Python check and its CEL twin.

A rule lives on the model whose fields it relates (the spec, a toleration, ...). The models run the
Python side on validation; the CRD generator copies the CEL side into `x-kubernetes-validations` of
the same object, so `kubectl apply` and `parse_spec` refuse the same manifests with the same message.
CEL sees the object *after* the API server applied defaults, so fields with a default need no
`has()` guard; optional fields do.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

RULE_ERROR_TYPE = "rule"


@dataclass(frozen=True)
class Rule:
    """One constraint between fields of a model.

    field: camelCase path of the offending field, relative to the model (e.g. "model.numLabels").
    message: what is wrong and what to do; shown after the field path.
    cel: the same constraint as a CEL expression over `self` (the model's object), or None when CEL
        cannot see a field it needs (the API server drops fields of untyped items, e.g. a list of
        numbers, strings or booleans, from CEL's view): such a rule is checked only by the model,
        so the controller refuses the object with the same message instead of `kubectl apply`.
    holds: the Python check over the validated model instance; True when the rule is satisfied.
    """

    field: str
    message: str
    cel: str | None
    holds: Callable[[Any], bool]

    def to_crd(self) -> dict[str, str]:
        """The x-kubernetes-validations entry."""
        return {"rule": self.cel, "message": self.message, "fieldPath": "." + self.field}


def check_rules(instance: Any, rules: tuple[Rule, ...]) -> None:
    """Raise a pydantic error for the first rule `instance` breaks (the path is kept in the context)."""
    for rule in rules:
        if not rule.holds(instance):
            raise PydanticCustomError(
                RULE_ERROR_TYPE, "{field}: {message}", {"field": rule.field, "message": rule.message}
            )
