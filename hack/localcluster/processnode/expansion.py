"""``$(VAR)`` expansion exactly as the kubelet does it for env values, command and args.

Why a port and not a regex: Kubernetes' rules have sharp corners that user manifests rely on:
``$$`` escapes to ``$``, an unknown ``$(NAME)`` stays literally in place, an unterminated ``$(``
is kept, and a lone ``$`` followed by anything else is copied. This is a line-by-line port of
``third_party/forked/golang/expansion/expand.go`` so the process node behaves like a kubelet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """A lookup over ``contexts`` (first hit wins) that leaves unknown names as ``$(NAME)``."""

    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"{_OPERATOR}{_OPENER}{name}{_CLOSER}"

    return lookup


def _read_variable_name(rest: str) -> tuple[str, bool, int]:
    """What follows a ``$``: (text, is_variable, bytes consumed after the ``$``)."""
    first = rest[0]
    if first == _OPERATOR:
        return _OPERATOR, False, 1
    if first == _OPENER:
        closing = rest.find(_CLOSER, 1)
        if closing >= 0:
            return rest[1:closing], True, closing + 1
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + first, False, 1


def expand(text: str, lookup: Callable[[str], str]) -> str:
    """Expand every ``$(NAME)`` in ``text`` through ``lookup``; ``$$`` yields ``$``."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == _OPERATOR and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable_name(text[cursor + 1 :])
            out.append(lookup(read) if is_variable else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def expand_all(items: list[str], env: Mapping[str, str]) -> list[str]:
    """Expand a container's command or args against its resolved environment."""
    lookup = mapping_for(env)
    return [expand(item, lookup) for item in items]
