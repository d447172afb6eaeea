"""Kubernetes resource quantities and the downward API's ``resourceFieldRef`` rounding, without I/O.

Why here: the process node resolves ``env[].valueFrom.resourceFieldRef`` the way a kubelet does,
so that a container can learn its own limits (the trainer sizes its thread pools from
``limits.cpu``). The kubelet's rule: value / divisor rounded *up* to an integer (CPU in millicores
first, so "500m" with divisor 1 gives "1"), and a limit that is not set is the node's allocatable
amount.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")
SUPPORTED_RESOURCES = ("limits.cpu", "requests.cpu", "limits.memory", "requests.memory")


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """ "500m" -> 0.5, "1Gi" -> 1073741824, "2" -> 2, "1e3" -> 1000."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity") from exc
    suffix = match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def resource_field_value(
    resources: dict, resource: str, divisor: str | None, allocatable: dict[str, str]
) -> str:
    """The env value of ``resourceFieldRef`` for a container's ``resources`` on a node."""
    if resource not in SUPPORTED_RESOURCES:
        raise QuantityError(f"resource {resource!r} is not supported; use one of {list(SUPPORTED_RESOURCES)}")
    section, name = resource.split(".", 1)
    amount = (resources.get(section) or {}).get(name)
    if amount is None and section == "limits":
        amount = allocatable.get(name)
    value = parse_quantity(amount) if amount is not None else Decimal(0)
    unit = parse_quantity(divisor or "1")
    if unit == 0:  # the API server stores an unset divisor as "0"; the kubelet reads it as 1
        unit = Decimal(1)
    if unit < 0:
        raise QuantityError(f"divisor {divisor!r} must be positive")
    if name == "cpu":  # the kubelet divides millicores by millicores
        return str(math.ceil((value * 1000).to_integral_value(rounding="ROUND_CEILING") / (unit * 1000)))
    return str(math.ceil(value / unit))
