"""Fencing checkpoint writers by attempt (pure rules of fencing.py)."""

from __future__ import annotations

import json

import pytest

from finetune_trainer.fencing import (
    attempt_marker_name,
    attempts_in,
    is_fenced,
    parse_rank_part,
    rank_part_json,
    retention_deletions,
    stale_partials,
)
from finetune_trainer.manifest import FileEntry, Manifest, ManifestError, parse_manifest


def test_markers_name_attempts():
    names = [attempt_marker_name(3), "attempt-12/", "x/attempt-1", "attempt-", "other"]
    assert attempts_in(names) == [1, 3, 12]
    assert is_fenced(2, [1, 2, 3])
    assert not is_fenced(3, [1, 2, 3])
    assert not is_fenced(0, [])


def test_parts_carry_the_attempt_and_old_parts_have_none():
    entries = [FileEntry("rng_state_1.pth", 10, "ab" * 32)]
    assert parse_rank_part(rank_part_json(4, entries)) == (4, entries)
    legacy = json.dumps([{"path": "rng_state_1.pth", "size": 10, "sha256": "ab" * 32}])
    assert parse_rank_part(legacy) == (None, entries)
    with pytest.raises(ManifestError):
        parse_rank_part('{"attempt": 1}')


def test_manifest_carries_the_attempt():
    manifest = Manifest(5, 1.0, 1, "h", (FileEntry("a", 1, "0" * 64),), attempt=7)
    assert parse_manifest(manifest.to_json(), expected_step=5).attempt == 7
    legacy = json.loads(manifest.to_json())
    del legacy["attempt"]
    assert parse_manifest(json.dumps(legacy)).attempt == 0


@pytest.mark.parametrize(
    ("committed", "keep", "own_newest", "own_attempt", "deleted"),
    [
        ({10: 1, 20: 1, 30: 1}, 2, 30, 1, [10]),  # plain keep-K
        ({10: 1, 20: 1, 30: 2}, 1, 20, 1, [10]),  # 30 is newer than my newest and a newer attempt's
        ({10: 1, 20: 1, 30: 1, 40: 1}, 1, 20, 1, [10]),  # 30 and 40: newer than my newest commit
        ({10: 2, 20: 1}, 1, 20, 1, []),  # 10 was written by a newer attempt (it resumed further back)
        ({10: None, 20: 0, 30: 1}, 1, 30, 1, [10, 20]),  # manifests before fencing count as attempt 0
    ],
)
def test_retention_spares_newer_checkpoints_and_newer_attempts(
    committed, keep, own_newest, own_attempt, deleted
):
    assert retention_deletions(committed, keep, own_newest, own_attempt) == deleted


def test_stale_partials_are_only_below_the_writers_own_newest_commit():
    assert stale_partials([5, 10, 15, 20, 25], [10, 20], own_newest=10) == [5]
    assert stale_partials([5, 10, 15, 20, 25], [10, 20], own_newest=20) == [5, 15]
