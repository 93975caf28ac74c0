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
training entirely; a case is a user's first interaction with a held-out item, scored from the
user's earlier (warm) items against the whole catalogue with those items excluded.
``cold_hr@10`` is that ranking's HR@10; ``cold_hr@10_among_cold`` ranks the target among the
held-out items only.
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

    split: LeaveOneOut  # leave-one-out over warm interactions only (vocabulary = all items)
    cold_items: np.ndarray  # vocabulary indices of held-out items
    cases: EvalCases


def cold_split(
    data: Interactions, catalog: Sequence[str], share: float = 0.15, seed: int = 0
) -> ColdSplit:
    """Remove ``share`` of the catalogue from training; build one case per affected user."""
    full = LeaveOneOut.from_interactions(data, catalog)
    vocab: Vocabulary = full.vocab
    rng = np.random.default_rng(seed)
    n = len(vocab.items)
    cold = np.sort(rng.choice(np.arange(1, n + 1), size=int(round(share * n)), replace=False))
    is_cold = np.zeros(vocab.table_rows, dtype=bool)
    is_cold[cold] = True
    warm_sequences, histories, targets, excluded = [], [], [], []
    for seq in full.sequences:
        warm = [i for i in seq if not is_cold[i]]
        warm_sequences.append(warm)
        for pos, item in enumerate(seq):
            if is_cold[item]:
                history = [i for i in seq[:pos] if not is_cold[i]]
                if history:
                    histories.append(history)
                    targets.append(item)
                    excluded.append(sorted(set(seq[:pos])))
                break
    split = LeaveOneOut(vocab, full.users, warm_sequences)
    cases = EvalCases(histories, np.asarray(targets, dtype=np.int64), excluded)
    return ColdSplit(split, cold, cases)


def evaluate_cold(scorer: Scorer, cold: ColdSplit) -> dict[str, float]:
    """``cold_hr@10`` (whole catalogue) and the ranking among held-out items only."""
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
        "n_cold_cases": len(cases.targets),
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
