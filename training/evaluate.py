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

Calibrated cold rows (``cold_hr@10_calibrated``): a model that knows each known item's popularity
scores a brand-new item, whose popularity nobody knows yet, below popular known items however
well its text matches; how far new items should be lifted is a one-number decision (a new-item
boost), and it is fitted honestly here: on *calibration cases* (up to 5 random clicks per user,
warm and held-out targets in their natural proportion, ranked against the whole catalogue), the
boost (a multiple of the scores' standard deviation, from a grid) that maximises HR@10 over all
those clicks. Users are split in two halves; each half's cold cases are scored with the boost
fitted on the other half's calibration cases (cross-fitting), so no case picks its own boost.
Every scorer gets the same procedure (the model and text zero-shot alike). It is a diagnostic,
not a target: it says whether lifting new items would pay for the clicks on known items it
costs (for a scorer that is weak on known items, such as text zero-shot, it costs nothing).
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
    case_users: np.ndarray  # the user (index into ``sequences``) of each case
    sequences: list[list[int]]  # every user's full sequence in ``vocab`` indices


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
    warm_sequences, histories, targets, excluded, case_users = [], [], [], [], []
    sequences = []
    for user, seq in enumerate(full.sequences):
        encoded = vocab.encode(items[i - 1] for i in seq)
        sequences.append(encoded)
        warm_sequences.append([i for i in encoded if i <= n_warm])
        for pos, item in enumerate(encoded):
            if item > n_warm:
                history = [i for i in encoded[:pos] if i <= n_warm]
                if history:
                    histories.append(history)
                    targets.append(item)
                    excluded.append(sorted(set(encoded[:pos])))
                    case_users.append(user)
                break
    split = LeaveOneOut(Vocabulary(warm_items), full.users, warm_sequences)
    cases = EvalCases(histories, np.asarray(targets, dtype=np.int64), excluded)
    cold = np.arange(n_warm + 1, vocab.table_rows, dtype=np.int64)
    return ColdSplit(split, vocab, cold, cases, np.asarray(case_users, dtype=np.int64), sequences)


def evaluate_cold(scorer: Scorer, cold: ColdSplit) -> dict[str, float]:
    """Whole-catalogue and among-held-out rankings of the cold cases, as scored and with the
    cross-fitted new-item boost (module docstring); ``scorer`` scores the scoring vocabulary
    ``cold.vocab`` (trained rows, then the held-out items)."""
    cases = cold.cases
    scores = score_in_batches(scorer, cases.histories)
    masked = mask_scores(scores, cases.excluded, keep=cases.targets)
    ranks = target_ranks(masked, cases.targets)
    only_cold = np.full_like(masked, -np.inf)
    only_cold[:, cold.cold_items] = masked[:, cold.cold_items]
    ranks_cold = target_ranks(only_cold, cases.targets)
    calibrated, boosts, calibration = _cross_fitted_ranks(scorer, cold, masked)
    return {
        "cold_hr@10": hit_rate_at_k(ranks, 10),
        "cold_ndcg@10": ndcg_at_k(ranks, 10),
        "cold_hr@10_among_cold": hit_rate_at_k(ranks_cold, 10),
        "cold_ndcg@10_among_cold": ndcg_at_k(ranks_cold, 10),
        "cold_hr@10_calibrated": hit_rate_at_k(calibrated, 10),
        "cold_ndcg@10_calibrated": ndcg_at_k(calibrated, 10),
        "new_item_boost_sd": float(np.mean(boosts)),
        **calibration,
        "n_cold_cases": len(cases.targets),
        "n_cold_items": len(set(cases.targets.tolist())),
    }


BOOST_GRID_SD = np.round(np.arange(0.0, 3.01, 0.1), 2)
CALIBRATION_CLICKS_PER_USER = 5


def calibration_cases(cold: ColdSplit, seed: int = 0) -> tuple[EvalCases, np.ndarray]:
    """Up to 5 random clicks per user (not the first), warm or held-out targets alike, each
    with the user's earlier warm items as history and all earlier items excluded; and the
    user of each case."""
    rng = np.random.default_rng(seed)
    n_warm = cold.split.vocab.table_rows - 1
    histories, targets, excluded, users = [], [], [], []
    for user, seq in enumerate(cold.sequences):
        positions = np.arange(1, len(seq))
        chosen = rng.choice(positions, size=min(CALIBRATION_CLICKS_PER_USER, len(positions)),
                            replace=False) if len(positions) else []
        for pos in sorted(chosen):
            history = [i for i in seq[:pos] if i <= n_warm]
            if history and seq[pos] not in seq[:pos]:
                histories.append(history)
                targets.append(seq[pos])
                excluded.append(sorted(set(seq[:pos])))
                users.append(user)
    return (EvalCases(histories, np.asarray(targets, dtype=np.int64), excluded),
            np.asarray(users, dtype=np.int64))


def _boosted_ranks(masked: np.ndarray, cold_items: np.ndarray, targets: np.ndarray,
                   boost: float) -> np.ndarray:
    lifted = masked.copy()
    lifted[:, cold_items] += boost
    return target_ranks(lifted, targets)


def _cross_fitted_ranks(scorer: Scorer, cold: ColdSplit,
                        masked: np.ndarray) -> tuple[np.ndarray, list[float], dict[str, float]]:
    """The cold cases' ranks with the boost fitted on the other half of the users."""
    calib, calib_users = calibration_cases(cold)
    calib_scores = score_in_batches(scorer, calib.histories)
    calib_masked = mask_scores(calib_scores, calib.excluded, keep=calib.targets)
    finite = calib_scores[:, 1:]
    scale = float(np.std(finite)) or 1.0
    ranks = np.empty(len(cold.cases.targets))
    boosts: list[float] = []
    hr_before, hr_after = [], []
    for half in (0, 1):
        fit = calib_users % 2 != half  # the other half's calibration cases
        hrs = [hit_rate_at_k(_boosted_ranks(calib_masked[fit], cold.cold_items,
                                            calib.targets[fit], g * scale), 10)
               for g in BOOST_GRID_SD]
        best = float(BOOST_GRID_SD[int(np.argmax(hrs))])  # the smallest boost among the best
        boosts.append(best)
        hr_before.append(hrs[0])
        hr_after.append(max(hrs))
        rows = cold.case_users % 2 == half
        ranks[rows] = _boosted_ranks(masked[rows], cold.cold_items, cold.cases.targets[rows],
                                     best * scale)
    return ranks, boosts, {"calibration_hr@10_unboosted": float(np.mean(hr_before)),
                           "calibration_hr@10_boosted": float(np.mean(hr_after)),
                           "n_calibration_cases": len(calib.targets)}


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
