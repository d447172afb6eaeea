"""$(VAR) expansion must match the kubelet's rules exactly (table from Kubernetes' expand_test.go)."""

import pytest

from localcluster.processnode.expansion import expand, expand_all, mapping_for

ENV = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
        ("$(VAR_REF)", "$(VAR_A)"),  # no recursion
        ("$(VAR_EMPTY)", ""),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),  # escaped
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$(VAR_A", "$(VAR_A"),  # unterminated
        ("$VAR_A", "$VAR_A"),  # not a reference
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("trailing $", "trailing $"),
        ("foo$()bar", "foo$()bar"),  # an empty name is unknown
        ("", ""),
        ("no refs", "no refs"),
    ],
)
def test_expand_follows_kubelet_rules(text: str, expected: str) -> None:
    assert expand(text, mapping_for(ENV)) == expected


def test_first_context_wins() -> None:
    assert expand("$(X)", mapping_for({"X": "1"}, {"X": "2"})) == "1"


def test_expand_all_expands_every_argument() -> None:
    argv = ["torchrun", "--node-rank=$(JOB_COMPLETION_INDEX)", "$(MISSING)"]
    assert expand_all(argv, {"JOB_COMPLETION_INDEX": "1"}) == ["torchrun", "--node-rank=1", "$(MISSING)"]
