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
    rank_in_list,
    ranking_metrics,
    target_ranks,
    top_k_indices,
)


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
