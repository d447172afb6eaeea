"""The rank-labelled log helper picks one attempt's pods in rank order and labels their lines."""

from __future__ import annotations

from finetune_operator.joblogs import RankPod, label_line, rank_pods


def pod(name: str, attempt: int, index: str | None) -> dict:
    annotations = {} if index is None else {"batch.kubernetes.io/job-completion-index": index}
    return {
        "metadata": {
            "name": name,
            "labels": {"finetune.dev/attempt": str(attempt)},
            "annotations": annotations,
        }
    }


def test_pods_of_the_chosen_attempt_in_rank_order() -> None:
    pods = [pod("j-a1-1-x", 1, "1"), pod("j-a0-0-y", 0, "0"), pod("j-a1-0-z", 1, "0"), pod("odd", 1, None)]
    assert rank_pods(pods, 1) == [RankPod(0, "j-a1-0-z"), RankPod(1, "j-a1-1-x")]
    assert rank_pods(pods, 0) == [RankPod(0, "j-a0-0-y")]
    assert rank_pods(pods, 5) == []


def test_lines_carry_an_aligned_rank_label() -> None:
    assert label_line(3, "step 10", width=2) == "[rank  3] step 10"
