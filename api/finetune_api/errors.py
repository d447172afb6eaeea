"""Turning pydantic's validation errors into messages for people: one line per field path.

pydantic reports locations as tuples and wraps messages ("Value error, ..."); users of kubectl think
in dotted camelCase paths (`spec.training.learningRate`). Cross-field rules (rules.py) carry their
own field path in the error context, which is appended to the location of the model that failed.
"""

from dataclasses import dataclass

from pydantic import ValidationError

from finetune_api.rules import RULE_ERROR_TYPE


@dataclass(frozen=True)
class FieldError:
    """One refused field: its full dotted path and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """A FineTuneJob spec was refused; `errors` lists every offending field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid FineTuneJob: " + "; ".join(str(e) for e in errors))


def _join(prefix: str, location: tuple[str | int, ...]) -> str:
    path = prefix
    for part in location:
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else str(part))
    return path


def _humanise(error_type: str, message: str) -> str:
    if error_type == "extra_forbidden":
        return "unknown field; check the spelling against `kubectl explain finetunejob.spec`"
    if error_type == "missing":
        return "required field is missing"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if message.startswith("Input should be "):
        return "must be " + message[len("Input should be ") :]
    return message[:1].lower() + message[1:] if message else message


def describe_validation_error(error: ValidationError, *, prefix: str) -> list[FieldError]:
    """One FieldError per pydantic error, with camelCase dotted paths under `prefix`."""
    described: list[FieldError] = []
    for item in error.errors(include_url=False):
        location = tuple(item["loc"])
        if item["type"] == RULE_ERROR_TYPE:
            context = item.get("ctx", {})
            path = _join(_join(prefix, location), tuple(str(context["field"]).split(".")))
            described.append(FieldError(path, str(context["message"])))
        else:
            # Union members show up as extra location parts (e.g. "list[...]"); keep only field names.
            location = tuple(p for p in location if isinstance(p, int) or ("[" not in p and "(" not in p))
            described.append(FieldError(_join(prefix, location), _humanise(item["type"], item["msg"])))
    return described
