"""Reusable field types: storage URIs, Kubernetes quantities and names.

Each type carries its own CRD validation (pattern, length bounds, CEL rule with a message) next to
the Python check, so the model and the generated CRD refuse the same values with the same words.
"""

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from finetune_api.constants import URI_SCHEMES

URI_MAX_LENGTH = 2048
URI_MESSAGE = "must be a URI with one of the schemes " + ", ".join(f"{s}://" for s in URI_SCHEMES)
_URI_RE = re.compile(r"^(" + "|".join(URI_SCHEMES) + r")://[^\s]+$")
URI_CEL = "self.matches('^(" + "|".join(URI_SCHEMES) + r")://[^\\s]+$')"


def uri_scheme(uri: str) -> str:
    """The scheme of a storage URI (`s3` for `s3://bucket/key`)."""
    return uri.split("://", 1)[0]


# pvc://<claim>/<path>: the claim becomes a pod volume, so it must be a valid PVC name (DNS subdomain).
_CLAIM = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
PVC_URI_MESSAGE = (
    "a pvc:// URI must be pvc://<claim>/<path> where <claim> is the name of a PersistentVolumeClaim "
    "in the job's namespace (lowercase letters, digits, '-' and '.') and <path> has no '..' segment"
)
_PVC_URI_RE = re.compile(rf"^pvc://{_CLAIM}(/.*)?$")
_PARENT_SEGMENT = r"/\.\.(/|$)"
PVC_URI_CEL = (
    "!self.startsWith('pvc://') || (self.matches('^pvc://"
    + _CLAIM.replace("\\", "\\\\")
    + "(/.*)?$') && !self.matches('"
    + _PARENT_SEGMENT.replace("\\", "\\\\")
    + "'))"
)


def _check_uri(value: str) -> str:
    if not _URI_RE.match(value):
        raise ValueError(f"{URI_MESSAGE}; got {value!r}")
    if value.startswith("pvc://") and (not _PVC_URI_RE.match(value) or re.search(_PARENT_SEGMENT, value)):
        raise ValueError(f"{PVC_URI_MESSAGE}; got {value!r}")
    return value


StorageUri = Annotated[
    str,
    AfterValidator(_check_uri),
    Field(
        min_length=1,
        max_length=URI_MAX_LENGTH,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": URI_CEL, "message": URI_MESSAGE},
                {"rule": PVC_URI_CEL, "message": PVC_URI_MESSAGE},
            ]
        },
    ),
]

# Kubernetes resource quantities ("16", "500m", "200Gi", 4). Same grammar as the apiserver's.
_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def _check_quantity(value: object) -> str:
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY_RE.match(text):
        raise ValueError(f"must be a Kubernetes quantity such as 4, 500m or 16Gi; got {value!r}")
    return text


Quantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    Field(
        max_length=64,
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN},
    ),
]

# DNS-1123 subdomain / label names used for Secrets and PriorityClasses.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_RE = re.compile(DNS_SUBDOMAIN_PATTERN)


def _cel_string(text: str) -> str:
    """Escape backslashes for a single-quoted CEL string literal."""
    return text.replace("\\", "\\\\")


DNS_NAME_MESSAGE = (
    "must be a lowercase DNS name (letters, digits, '-' and '.'), as Kubernetes object names are"
)


def _check_dns_name(value: str) -> str:
    if not _DNS_RE.match(value):
        raise ValueError(f"{DNS_NAME_MESSAGE}; got {value!r}")
    return value


KubernetesName = Annotated[
    str,
    AfterValidator(_check_dns_name),
    Field(
        min_length=1,
        max_length=253,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches('{_cel_string(DNS_SUBDOMAIN_PATTERN)}')", "message": DNS_NAME_MESSAGE}
            ]
        },
    ),
]

ShortText = Annotated[str, Field(max_length=256)]

NO_EXPANSION_CEL = "!self.contains('$(')"
NO_EXPANSION_MESSAGE = (
    "must not contain '$(': this text reaches the trainer's environment, where the kubelet would "
    "expand $(NAME) to another variable's value (such as a storage Secret's key); remove it"
)


def _check_no_expansion(value: str) -> str:
    if "$(" in value:
        raise ValueError(f"{NO_EXPANSION_MESSAGE}; got {value!r}")
    return value


def env_text(max_length: int, pattern: str | None = None) -> Any:
    """A string that the operator places into the workers' env: `$(` is refused (issue 13)."""
    return Annotated[
        str,
        Field(
            max_length=max_length,
            pattern=pattern,
            json_schema_extra={
                "x-kubernetes-validations": [{"rule": NO_EXPANSION_CEL, "message": NO_EXPANSION_MESSAGE}]
            },
        ),
        AfterValidator(_check_no_expansion),
    ]


def _check_unique(values: list[str] | None) -> list[str] | None:
    if values is not None:
        seen: set[str] = set()
        duplicates = sorted({v for v in values if v in seen or seen.add(v)})
        if duplicates:
            raise ValueError(f"entries must be unique; remove the duplicate {', '.join(duplicates)}")
    return values


# A list of unique names; the CRD says x-kubernetes-list-type: set so the API server checks it too.
UniqueNames = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128)]],
    AfterValidator(_check_unique),
    Field(json_schema_extra={"x-kubernetes-list-type": "set"}),
]
