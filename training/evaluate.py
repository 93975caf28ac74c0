"""The evaluation harness shared by the sequence model and every baseline (numpy only).

Protocol (leave-one-out, full ranking):
- each user's events are sorted stably by timestamp (ties keep the source's row order); the last
  one is the test target, the second-to-last the validation target;
- every item of the catalogue is ranked (no sampled negatives); the headline metrics exclude the
  user's own earlier items (MovieLens never repeats a (user, item) pair), and the same metrics
  without that exclusion are reported beside them under keys ending in ``_all``;
- ``coverage``: share of the catalogue that appears in at least one test top-10 list;
- ``hr@10_cold_test``: HR@10 over test cases whose target has fewer than 5 training
  interactions (few cases on ML-100K: see ``n_cold_test``).

Cold start on held-out items (``cold_split``): a random 15% of the catalogue is removed from
training entirely: absent from the training vocabulary, so never a softmax negative either. At
scoring time the held-out items are appended after the trained vocabulary, as serving appends a
new item (a text-only row from the item tower). A case is a user's first interaction with a
held-out item, scored from the user's earlier (warm) items against the whole catalogue with those
items excluded. ``cold_hr@10``/``cold_ndcg@10`` rank against the whole catalogue,
``cold_hr@10_among_cold`` among the held-out items only; ``n_cold_items`` is the number of
distinct held-out items the cases ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.core.metrics import (
    coverage,
    hit_rate_at_k,
    mask_scores,
    ndcg_at_k,
    ranking_metrics,
    target_ranks,
    top_k_indices,
)
from training.data import Interactions, LeaveOneOut, Vocabulary

COLD_TEST_MAX_TRAIN = 5
Scorer = Callable[[Sequence[Sequence[int]]], np.ndarray]


@dataclass
class EvalCases:
    histories: list[list[int]]
    targets: np.ndarray
    excluded: list[list[int]]


def loo_cases(split: LeaveOneOut, which: str) -> EvalCases:
    histories, targets, excluded = split.eval_cases(which)
    return EvalCases(histories, targets, excluded)


def score_in_batches(scorer: Scorer, histories: Sequence[Sequence[int]],
                     batch: int = 1024) -> np.ndarray:
    parts = [scorer(histories[i : i + batch]) for i in range(0, len(histories), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def evaluate(
    scorer: Scorer, cases: EvalCases, train_counts: np.ndarray | None = None
) -> dict[str, float]:
    """Full-ranking metrics of ``scorer`` on ``cases`` (see the module docstring)."""
    scores = score_in_batches(scorer, cases.histories)
    masked = mask_scores(scores, cases.excluded, keep=cases.targets)
    ranks = target_ranks(masked, cases.targets)
    metrics = ranking_metrics(ranks)
    metrics.update(ranking_metrics(target_ranks(mask_scores(scores, None), cases.targets), "_all"))
    n_items = scores.shape[1] - 1
    # the recommendation list a user would get: own history excluded, target not favoured
    shown = mask_scores(scores, cases.excluded)
    metrics["coverage"] = coverage(top_k_indices(shown, 10), n_items)
    if train_counts is not None:
        cold = train_counts[cases.targets] < COLD_TEST_MAX_TRAIN
        metrics["hr@10_cold_test"] = hit_rate_at_k(ranks[cold], 10)
        metrics["n_cold_test"] = int(cold.sum())
    metrics["n_cases"] = len(cases.targets)
    return metrics


# --- cold start on held-out items ------------------------------------------------------------
@dataclass
class ColdSplit:
    """Training data without the held-out items, and the cases that ask for them."""

    split: LeaveOneOut  # leave-one-out over warm interactions; vocabulary = warm items only
    vocab: Vocabulary  # the scoring vocabulary: ``split``'s items, then the held-out ones
    cold_items: np.ndarray  # indices of the held-out items in ``vocab`` (the appended rows)
    cases: EvalCases  # indices in ``vocab``


def cold_split(
    data: Interactions, catalog: Sequence[str], share: float = 0.15, seed: int = 0
) -> ColdSplit:
    """Remove ``share`` of the catalogue from training; build one case per affected user."""
    full = LeaveOneOut.from_interactions(data, catalog)
    items = full.vocab.items
    rng = np.random.default_rng(seed)
    drawn = set(rng.choice(len(items), size=int(round(share * len(items))), replace=False))
    warm_items = [item for i, item in enumerate(items) if i not in drawn]
    held_out = [item for i, item in enumerate(items) if i in drawn]
    vocab = Vocabulary([*warm_items, *held_out])
    n_warm = len(warm_items)
    warm_sequences, histories, targets, excluded = [], [], [], []
    for seq in full.sequences:
        encoded = vocab.encode(items[i - 1] for i in seq)
        warm_sequences.append([i for i in encoded if i <= n_warm])
        for pos, item in enumerate(encoded):
            if item > n_warm:
                history = [i for i in encoded[:pos] if i <= n_warm]
                if history:
                    histories.append(history)
                    targets.append(item)
                    excluded.append(sorted(set(encoded[:pos])))
                break
    split = LeaveOneOut(Vocabulary(warm_items), full.users, warm_sequences)
    cases = EvalCases(histories, np.asarray(targets, dtype=np.int64), excluded)
    cold = np.arange(n_warm + 1, vocab.table_rows, dtype=np.int64)
    return ColdSplit(split, vocab, cold, cases)


def evaluate_cold(scorer: Scorer, cold: ColdSplit) -> dict[str, float]:
    """Whole-catalogue and among-held-out rankings of the cold cases; ``scorer`` scores the
    scoring vocabulary ``cold.vocab`` (trained rows, then the held-out items)."""
    cases = cold.cases
    scores = score_in_batches(scorer, cases.histories)
    masked = mask_scores(scores, cases.excluded, keep=cases.targets)
    ranks = target_ranks(masked, cases.targets)
    only_cold = np.full_like(masked, -np.inf)
    only_cold[:, cold.cold_items] = masked[:, cold.cold_items]
    ranks_cold = target_ranks(only_cold, cases.targets)
    return {
        "cold_hr@10": hit_rate_at_k(ranks, 10),
        "cold_ndcg@10": ndcg_at_k(ranks, 10),
        "cold_hr@10_among_cold": hit_rate_at_k(ranks_cold, 10),
        "cold_ndcg@10_among_cold": ndcg_at_k(ranks_cold, 10),
        "n_cold_cases": len(cases.targets),
        "n_cold_items": len(set(cases.targets.tolist())),
    }


def mean_std(runs: Sequence[dict[str, float]]) -> dict[str, dict[str, float] | float]:
    """Per metric: {"mean", "std"} over runs (one run: the value itself)."""
    if len(runs) == 1:
        return dict(runs[0])
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    return {
        k: {"mean": float(np.mean([r[k] for r in runs])),
            "std": float(np.std([r[k] for r in runs], ddof=1))}
        for k in keys
    }
