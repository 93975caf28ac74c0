"""The one ranking-metric implementation: offline evaluation, prequential replay, benchmarks.

Everything works on the 0-based *rank* of the item the user actually chose next (``inf`` when it
was not ranked at all, e.g. not in a top-K list).

>>> ranks = np.array([0, 1, 10, np.inf])
>>> round(hit_rate_at_k(ranks, 10), 3), round(ndcg_at_k(ranks, 10), 3)
(0.5, 0.408)
>>> round(mrr_at_k(ranks, 10), 3)
0.375
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

METRIC_KEYS = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20")


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(ranks < k)) if ranks.size else 0.0


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """One relevant item: DCG = 1 / log2(rank + 2) inside the top k, ideal DCG = 1."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return 0.0
    gains = np.where(ranks < k, 1.0 / np.log2(np.minimum(ranks, k) + 2.0), 0.0)
    return float(np.mean(gains))


def mrr_at_k(ranks: np.ndarray, k: int) -> float:
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return 0.0
    return float(np.mean(np.where(ranks < k, 1.0 / (np.minimum(ranks, k) + 1.0), 0.0)))


def ranking_metrics(ranks: np.ndarray, suffix: str = "") -> dict[str, float]:
    """hr@10, ndcg@10, mrr@10, hr@20, ndcg@20 (keys get ``suffix``, e.g. ``_all``)."""
    return {
        f"hr@10{suffix}": hit_rate_at_k(ranks, 10),
        f"ndcg@10{suffix}": ndcg_at_k(ranks, 10),
        f"mrr@10{suffix}": mrr_at_k(ranks, 10),
        f"hr@20{suffix}": hit_rate_at_k(ranks, 20),
        f"ndcg@20{suffix}": ndcg_at_k(ranks, 20),
    }


def mask_scores(
    scores: np.ndarray, exclude: Sequence[Iterable[int]] | None, keep: np.ndarray | None = None
) -> np.ndarray:
    """Copy of ``scores`` [B, V] with padding (index 0) and each row's excluded items at -inf.

    ``keep`` (one index per row, e.g. the target) is never masked.
    """
    masked = np.array(scores, dtype=np.float64, copy=True)
    masked[:, 0] = -np.inf
    if exclude is not None:
        for row, items in enumerate(exclude):
            idx = np.fromiter(items, dtype=np.int64)
            if keep is not None:
                idx = idx[idx != keep[row]]
            masked[row, idx] = -np.inf
    return masked


def target_ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each row's target among all items.

    Ties are counted against the target (rank = number of *other* items scored at least as
    high), so a model that scores many items equally (e.g. unseen items at zero) gains nothing
    from the tie.
    """
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    return ((scores >= target_scores).sum(axis=1) - 1).astype(np.float64)


def rank_in_list(items: Sequence[str], target: str) -> float:
    """Rank of ``target`` in a recommended list, ``inf`` when absent (prequential, feedback)."""
    try:
        return float(list(items).index(target))
    except ValueError:
        return float("inf")


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best items per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` with linear interpolation between the
    closest ranks (numpy's default); ``nan`` for no values. Every latency p50/p99 uses it.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile(range(1, 101), 99), percentile([], 99)
    (2.5, 99.01, nan)
    """
    array = np.fromiter(values, dtype=np.float64)
    return float(np.percentile(array, q)) if array.size else float("nan")


def coverage(top_lists: np.ndarray, n_items: int) -> float:
    """Share of the catalogue (excluding padding) that appears in any top-K list."""
    return float(len(np.unique(top_lists[top_lists > 0])) / max(1, n_items))
