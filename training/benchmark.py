"""``streamrec eval``: checkpoints and baselines in one harness, over one or more seeds.

Per seed: the model (text+ID) and the ID-only transformer on the leave-one-out split, and their
``-cold`` twins trained without a held-out 15% of the catalogue (drawn with the same seed) for
``cold_hr@10``. A checkpoint that exists is evaluated as it is; a missing one is trained once and
saved. Baselines (most-popular, item-kNN, ALS matrix factorisation, text zero-shot) are fitted on
the same training sequences and ranked by the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamrec.core.config import Settings
from training.baselines import ImplicitALS, ItemKNN, MostPopular, TextZeroShot
from training.data import LeaveOneOut
from training.evaluate import cold_split, evaluate, evaluate_cold, loo_cases, mean_std
from training.pipeline import (
    Dataset,
    checkpoint_path,
    load_dataset,
    log,
    text_matrix,
    train_variant,
)

PROTOCOL = (
    "leave-one-out per user (last = test, second-to-last = validation), events sorted stably "
    "by timestamp; full ranking over the whole catalogue; headline metrics exclude the user's "
    "own earlier items, keys ending in _all do not; cold_hr@10: HR@10 of held-out items "
    "(share of the catalogue removed from training) for users who interacted with them"
)


def run_benchmark(
    dataset_name: str,
    settings: Settings,
    *,
    seeds: list[int],
    items: Path | None = None,
    max_users: int | None = None,
    cold_share: float = 0.15,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    tag_suffix: str = "",
) -> dict[str, Any]:
    dataset = load_dataset(dataset_name, settings, items=items, max_users=max_users)
    dataset.tag += tag_suffix
    split = LeaveOneOut.from_interactions(dataset.interactions, dataset.catalog)
    vectors = text_matrix(dataset, split.vocab.items, settings)
    runs: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        cold = cold_split(dataset.interactions, dataset.catalog, cold_share, seed)
        for name, metrics in _seed_run(dataset, split, cold, vectors, seed, settings,
                                       overrides, progress).items():
            runs.setdefault(name, []).append(metrics)
    summary = {name: mean_std(r) for name, r in runs.items()}
    model = summary.pop("text+id")
    baselines = {"id_only_transformer": summary.pop("id"), **summary}
    return {
        "model": model,
        "baselines": baselines,
        "targets": _targets(model, baselines),
        "seeds": seeds,
        "dataset": dataset.data_range(),
        "cold_share": cold_share,
        "protocol": PROTOCOL,
    }


def _seed_run(
    dataset: Dataset, split: LeaveOneOut, cold: Any, vectors: np.ndarray | None, seed: int,
    settings: Settings, overrides: dict[str, Any] | None, progress: bool,
) -> dict[str, dict[str, Any]]:
    from training.train import load_checkpoint, score_histories

    test = loo_cases(split, "test")
    counts = split.train_counts()
    variants = ["text+id", "id"] if vectors is not None else ["id"]
    out: dict[str, dict[str, Any]] = {}
    for variant in variants:
        path = checkpoint_path(settings, dataset.tag, variant, seed)
        cold_path = checkpoint_path(settings, dataset.tag, f"{variant}-cold", seed)
        if not path.exists():
            log(f"training missing checkpoint {path}")
            train_variant(dataset, split, vectors, variant, seed, path,
                          overrides=overrides, progress=progress)
        if not cold_path.exists():
            log(f"training missing checkpoint {cold_path}")
            train_variant(dataset, cold.split, vectors, f"{variant}-cold", seed, cold_path,
                          overrides=overrides, progress=progress,
                          extra={"cold_items": cold.cold_items.tolist()})
        model, _vocab, _ = load_checkpoint(path)
        metrics = evaluate(lambda h, m=model: score_histories(m, h), test, counts)
        cold_model, _vocab, payload = load_checkpoint(cold_path)
        held_out = np.asarray(payload.get("cold_items", cold.cold_items.tolist()))
        # text+ID scores held-out items as new items (text only); ID-only has only the
        # untrained rows it was initialised with: it cannot know them
        new_items = held_out if variant == "text+id" else None
        metrics.update(evaluate_cold(
            lambda h, m=cold_model, n=new_items: score_histories(m, h, new_items=n), cold))
        out[variant] = metrics
    baselines: dict[str, Any] = {
        "most_popular": lambda: MostPopular(split.vocab.table_rows),
        "item_knn": lambda: ItemKNN(split.vocab.table_rows),
        "als_mf": lambda: ImplicitALS(split.vocab.table_rows, seed=seed),
    }
    if vectors is not None:
        baselines["text_zero_shot"] = lambda: TextZeroShot(vectors)
    for name, make in baselines.items():
        fitted = make().fit(split.train_sequences())
        metrics = evaluate(fitted.scores, test, counts)
        cold_fitted = make().fit(cold.split.train_sequences())
        metrics.update(evaluate_cold(cold_fitted.scores, cold))
        out[name] = metrics
        log(f"{name} seed {seed}: ndcg@10 {metrics['ndcg@10']:.4f}, "
            f"cold_hr@10 {metrics['cold_hr@10']:.4f}")
    return out


def _value(metric: Any) -> float:
    return float(metric["mean"]) if isinstance(metric, dict) else float(metric)


def _targets(model: dict[str, Any], baselines: dict[str, Any]) -> dict[str, bool]:
    ndcg = _value(model["ndcg@10"])
    targets = {
        "ndcg@10 >= 1.2 x most_popular": ndcg >= 1.2 * _value(baselines["most_popular"]["ndcg@10"]),
        "ndcg@10 > item_knn": ndcg > _value(baselines["item_knn"]["ndcg@10"]),
    }
    id_only = baselines.get("id_only_transformer", {})
    if "ndcg@10" in id_only and "cold_hr@10" in model:
        targets["ndcg@10 > id_only_transformer"] = ndcg > _value(id_only["ndcg@10"])
        # "clearly above": at least 0.01 absolute and twice the ID-only value
        cold, cold_id = _value(model["cold_hr@10"]), _value(id_only["cold_hr@10"])
        targets["cold_hr@10 clearly > id_only_transformer"] = (
            cold >= cold_id + 0.01 and cold >= 2 * cold_id)
    return targets
