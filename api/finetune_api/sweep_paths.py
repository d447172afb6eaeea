"""Dotted paths into a FineTuneJob spec: which fields a FineTuneSweep may vary, and the substitution.

A sweep parameter is named by its camelCase path inside the template (`training.learningRate`,
`model.lora.r`). The set of valid paths is derived from the FineTuneJobSpec model itself (its
structural schema, the one the CRD is generated from), so a field added to the job API becomes
sweepable with no change here, and the CRD can refuse an unknown path at `kubectl apply` with a CEL
`in` list generated from the same walk.

Leaves are fields that are not sections (objects with their own properties): numbers, integers,
booleans, strings and lists. A float parameter needs a number field; an int parameter an integer or
number field; a categorical parameter may set any leaf.
"""

import copy
from functools import cache
from typing import Any, Literal

from finetune_api.crd import model_schema

LeafKind = Literal["integer", "number", "boolean", "string", "array", "object"]


def _walk(node: dict[str, Any], prefix: str, out: dict[str, LeafKind]) -> None:
    for name, child in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if child.get("type") == "object" and "properties" in child:
            _walk(child, path, out)
        else:
            out[path] = child.get("type", "object")


@cache
def spec_leaves() -> dict[str, LeafKind]:
    """Every sweepable path of a FineTuneJob spec and the JSON type of its field, sorted by path."""
    from finetune_api.spec import FineTuneJobSpec

    leaves: dict[str, LeafKind] = {}
    _walk(model_schema(FineTuneJobSpec), "", leaves)
    return dict(sorted(leaves.items()))


def float_paths() -> list[str]:
    """Paths a float parameter may set (number fields)."""
    return [path for path, kind in spec_leaves().items() if kind == "number"]


def int_paths() -> list[str]:
    """Paths an int parameter may set (integer and number fields)."""
    return [path for path, kind in spec_leaves().items() if kind in ("integer", "number")]


def unknown_path_message(path: str) -> str:
    return (
        f"{path!r} is not a field of the FineTuneJob spec; name a field inside spec.template with its "
        "camelCase dotted path, e.g. training.learningRate or model.lora.r "
        "(kubectl explain finetunejob.spec lists them)"
    )


def set_path(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the camelCase `spec` with `path` set to `value` (missing sections are created)."""
    result = copy.deepcopy(spec)
    node = result
    *parents, leaf = path.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value
    return result


def get_path(spec: dict[str, Any], path: str) -> Any:
    """The value at `path` in a camelCase spec, or None when a section on the way is absent."""
    node: Any = spec
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
