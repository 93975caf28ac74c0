"""The one metric implementation, against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.core.metrics import (
    coverage,
    hit_rate_at_k,
    mask_scores,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    rank_in_list,
    ranking_metrics,
    target_ranks,
    top_k_indices,
)
from streamrec.core.versions import Vocabulary
from training.gate import PromotionGate
from training.holdout import HoldoutCases
from training.scored_model import ScoredModel


def test_hand_computed_ranks() -> None:
    ranks = np.array([0, 1, 9, 10, np.inf])
    assert hit_rate_at_k(ranks, 10) == pytest.approx(3 / 5)
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 5)
    expected_ndcg = (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(11)) / 5
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected_ndcg)
    assert mrr_at_k(ranks, 10) == pytest.approx((1 + 1 / 2 + 1 / 10) / 5)
    # rank 10 is inside the top 20
    assert ndcg_at_k(ranks, 20) == pytest.approx(expected_ndcg + 1 / math.log2(12) / 5)


def test_empty_and_all_keys() -> None:
    assert hit_rate_at_k(np.array([]), 10) == 0.0
    assert ndcg_at_k(np.array([]), 10) == 0.0
    metrics = ranking_metrics(np.array([0.0]), "_all")
    assert set(metrics) == {"hr@10_all", "ndcg@10_all", "mrr@10_all", "hr@20_all", "ndcg@20_all"}
    assert all(v == 1.0 for v in metrics.values())


def test_target_rank_counts_better_items_and_ties_against_the_target() -> None:
    scores = np.array([[0.0, 0.9, 0.5, 0.7, 0.1],
                       [0.0, 0.1, 0.2, 0.3, 0.4],
                       [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert target_ranks(scores, np.array([2, 4, 3])).tolist() == [2.0, 0.0, 4.0]


def test_masking_excludes_history_and_padding_but_keeps_the_target() -> None:
    scores = np.array([[5.0, 0.9, 0.5, 0.7, 0.1]])
    masked = mask_scores(scores, [[1, 3, 2]], keep=np.array([2]))
    assert masked[0, 0] == -np.inf  # padding
    assert masked[0, 1] == -np.inf and masked[0, 3] == -np.inf
    assert masked[0, 2] == 0.5  # the target is never masked
    assert target_ranks(masked, np.array([2])).tolist() == [0.0]
    assert target_ranks(mask_scores(scores, None), np.array([2])).tolist() == [2.0]


def test_top_k_and_coverage() -> None:
    scores = np.array([[-np.inf, 0.2, 0.9, 0.5], [-np.inf, 0.8, 0.1, 0.3]])
    top = top_k_indices(scores, 2)
    assert top.tolist() == [[2, 3], [1, 3]]
    assert coverage(top, n_items=3) == pytest.approx(1.0)
    assert coverage(top[:1], n_items=3) == pytest.approx(2 / 3)


def test_rank_in_list() -> None:
    assert rank_in_list(["a", "b", "c"], "c") == 2.0
    assert rank_in_list(["a"], "z") == math.inf


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == pytest.approx(25.0)
    assert percentile([5.0], 99) == 5.0 and math.isnan(percentile([], 50))
    latencies = list(range(1, 1001))
    assert percentile(latencies, 99) == pytest.approx(float(np.percentile(latencies, 99)))


class _FixedScores(ScoredModel):
    """A scored model whose every answer is one score row (no torch needed)."""

    def __init__(self, items: list[str], row: list[float]) -> None:
        self.vocab = Vocabulary(items)
        self.row = np.array([0.0, *row])

    def scores(self, sequences: list[list[str]]) -> np.ndarray:
        return np.tile(self.row, (len(sequences), 1))


def test_the_promotion_gate_counts_ties_against_the_target_like_offline_metrics() -> None:
    items = [f"i{n}" for n in range(30)]
    cases = HoldoutCases(histories=[["i0"]] * 20, targets=["i1"] * 20)
    tied = _FixedScores(items, [1.0] * 30)  # scores every item the same: learned nothing
    ranked = np.linspace(1.0, 0.0, 30)
    ranked[1] = 0.5  # the target behind 13 items (i2..i14; i0 is history, masked)
    live = _FixedScores(items, list(ranked))
    # the target ties with the 28 other unseen items: rank 28, as target_ranks counts it
    assert tied.target_ranks(cases)[0] == 28.0
    expected = target_ranks(mask_scores(tied.scores(["x"]), [[1]]), np.array([2]))[0]
    assert tied.target_ranks(cases)[0] == expected
    assert live.target_ranks(cases)[0] == 13.0
    decision = PromotionGate(metric="hr@20", min_gain=0.0, min_cases=10).decide(
        tied.evaluate(cases), live.evaluate(cases))
    assert not decision.promote and decision.candidate["hr@20"] == 0.0
