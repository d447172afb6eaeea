"""From a pydantic JSON schema to a Kubernetes *structural* OpenAPI v3 schema.

The API server accepts only structural schemas: every node has a type, no `$ref`, no `anyOf` of
types, no `additionalProperties: false`, and OpenAPI 3.0 style exclusive bounds. pydantic emits
JSON Schema 2020-12, so this module inlines references, collapses `Optional[X]` to X (optionality
is the absence from `required`), turns free-form objects into `x-kubernetes-preserve-unknown-fields`,
and drops what Kubernetes does not know (titles, `propertyNames`, null defaults). Descriptions,
defaults, enums, bounds, patterns and `x-kubernetes-*` extensions are kept. Every property must
have a description, so `kubectl explain` can teach the whole API; a missing one is an error here.

It also holds the CRD document skeleton both kinds share (labels, names, the one served version
with the status subresource, the top-level apiVersion/kind/metadata/spec/status object), so
FineTuneJob and FineTuneSchedule differ only in what is really theirs: names, columns, schemas
and extra rules.
"""

import copy
from typing import Any

from finetune_api.constants import API_VERSION, CATEGORIES, GROUP, VERSION

_DROPPED_KEYS = frozenset({"title", "propertyNames", "$defs", "examples", "const"})


class SchemaError(ValueError):
    """The models produce a schema the API server would refuse or that lacks documentation."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref` (sibling keys such as description and default win over the definition's)."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    merged = copy.deepcopy(defs[name])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return _resolve(merged, defs)


def _collapse_optional(node: dict[str, Any], path: str) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` -> X, keeping the outer keys (description, default, extensions)."""
    if "anyOf" not in node:
        return node
    branches = [b for b in node["anyOf"] if b.get("type") != "null"]
    if len(branches) != 1:
        raise SchemaError(f"{path}: unions of several types are not structural; use one type per field")
    outer = {k: v for k, v in node.items() if k != "anyOf"}
    merged = {**branches[0], **outer}
    merged.setdefault("x-kubernetes-validations", [])
    merged["x-kubernetes-validations"] = branches[0].get("x-kubernetes-validations", []) + outer.get(
        "x-kubernetes-validations", []
    )
    if not merged["x-kubernetes-validations"]:
        del merged["x-kubernetes-validations"]
    return merged


def _openapi_bounds(node: dict[str, Any]) -> None:
    """JSON Schema numeric exclusive bounds -> OpenAPI 3.0 `minimum` + `exclusiveMinimum: true`."""
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[plain] = value
            node[bound] = True


def structural(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Return the structural form of `node` (a pydantic JSON schema node); `path` is for errors."""
    node = _resolve(_collapse_optional(_resolve(node, defs), path), defs)
    node = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}
    if "default" in node and node["default"] is None:
        del node["default"]
    _openapi_bounds(node)

    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
    elif node.get("additionalProperties") is True or node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node["type"] = "object"
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif "type" not in node:
        raise SchemaError(f"{path or '<root>'}: no type; give the field a concrete type")

    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"], defs, f"{path}.*")
    if "properties" in node:
        properties = {}
        for name, child in node["properties"].items():
            child_path = f"{path}.{name}" if path else name
            converted = structural(child, defs, child_path)
            if not converted.get("description"):
                raise SchemaError(f"{child_path}: no description; add one so kubectl explain can show it")
            properties[name] = converted
        node["properties"] = properties
    if "items" in node:
        node["items"] = structural(node["items"], defs, f"{path}[*]")
    return node


def structural_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Structural schema of a whole model (as returned by `model_json_schema(by_alias=True)`)."""
    defs = json_schema.get("$defs", {})
    return structural(json_schema, defs)


def model_schema(model: type) -> dict[str, Any]:
    """Structural schema of a pydantic model class, with camelCase aliases as in manifests."""
    return structural_schema(model.model_json_schema(by_alias=True, mode="validation"))  # type: ignore[attr-defined]


def object_schema(
    *,
    kind: str,
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    validations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """openAPIV3Schema of a whole object: apiVersion, kind, metadata, the required spec and status.

    `validations` are CEL rules on the object itself (they may look at metadata).
    """
    schema: dict[str, Any] = {"type": "object", "description": description, "required": ["spec"]}
    if validations:
        schema["x-kubernetes-validations"] = validations
    schema["properties"] = {
        "apiVersion": {"type": "string", "description": f"API version of the object: {API_VERSION}."},
        "kind": {"type": "string", "description": f"Kind of the object: {kind}."},
        "metadata": {"type": "object"},
        "spec": spec,
        "status": status,
    }
    return schema


def crd_document(
    *,
    name: str,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    printer_columns: list[dict[str, Any]],
    schema: dict[str, Any],
) -> dict[str, Any]:
    """The whole apiextensions.k8s.io/v1 CustomResourceDefinition of one namespaced kind of ours."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "finetune-operator",
                "app.kubernetes.io/part-of": "finetune-operator",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
