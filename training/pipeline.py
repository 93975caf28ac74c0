"""Datasets, checkpoints and the train/evaluate steps the CLI and the retraining loop share.

Checkpoints live under ``<artifacts>/checkpoints/<dataset tag>/<variant>-seed<S>-<hash>.pt`` with
their metrics beside them (``.json``); ``<hash>`` (:func:`run_fingerprint`) covers the training
configuration and the data, so a different ``--epochs`` or model never reuses an old checkpoint.
Variants: ``text+id`` (the model), ``id`` (the same transformer with ID embeddings only) and
``text+id-cold``, trained without the held-out items (an ID-only model cannot score an item
outside its vocabulary, so it has no cold twin). Text vectors are cached under
``<artifacts>/text-vectors/``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamrec.core.config import Settings, UserError
from training.data import (
    Interactions,
    LeaveOneOut,
    interactions_from_events,
    movielens_catalog,
    movielens_interactions,
    read_catalog_jsonl,
    read_clicks_from_kafka,
    read_jsonl_events,
)

if TYPE_CHECKING:
    from training.train import TrainConfig

VARIANTS = ("text+id", "id")


@dataclass
class Dataset:
    """Interactions plus the catalogue's item text (``None`` when there is no text)."""

    tag: str
    interactions: Interactions
    catalog: list[str]  # item ids, catalogue order
    texts: dict[str, str] | None

    def data_range(self) -> dict[str, Any]:
        ts = self.interactions.ts
        return {
            "dataset": self.tag,
            "interactions": len(self.interactions),
            "users": len(set(self.interactions.users)),
            "items": len(self.catalog),
            "first_ts": min(ts) if ts else None,
            "last_ts": max(ts) if ts else None,
        }


def load_dataset(
    name: str,
    settings: Settings | None = None,
    *,
    items: Path | None = None,
    max_users: int | None = None,
) -> Dataset:
    """``ml-100k``, a JSONL click log path, or ``kafka`` (the clicks topic, replayed).

    ``items`` (JSONL in the items contract) gives item text for click-log datasets.
    ``max_users`` keeps the first N users (a small slice for CI).
    """
    settings = settings or Settings.from_env()
    texts: dict[str, str] | None = None
    if name == "ml-100k":
        catalog_text = movielens_catalog()
        data = movielens_interactions()
        texts = {c.item_id: c.text for c in catalog_text}
        catalog = [c.item_id for c in catalog_text]
    else:
        if name == "kafka":
            data = read_clicks_from_kafka(settings.require_kafka(), settings.kafka.clicks_topic,
                                          client_options=settings.kafka.client_options())
        else:
            path = Path(name)
            if not path.exists():
                raise UserError(f"no dataset {name!r}: use ml-100k, kafka or a JSONL click log")
            data = interactions_from_events(read_jsonl_events(path))
        if not len(data):
            raise UserError(f"dataset {name!r} holds no valid click events")
        if items is not None:
            texts = {item.item_id: item_text(item.title, item.text, item.categories)
                     for item in read_catalog_jsonl(items)}
        catalog = sorted(set(data.items) | set(texts or ()), key=_natural)
    tag = "ml-100k" if name == "ml-100k" else ("kafka" if name == "kafka" else Path(name).stem)
    if max_users is not None:
        keep = set(sorted(set(data.users), key=_natural)[:max_users])
        rows = [i for i, u in enumerate(data.users) if u in keep]
        data = Interactions([data.users[i] for i in rows], [data.items[i] for i in rows],
                            [data.ts[i] for i in rows])
        tag = f"{tag}-u{max_users}"
    return Dataset(tag, data, catalog, texts)


def item_text(title: str, text: str, categories: Any) -> str:
    parts = [title or "", text or ""]
    if categories:
        parts.append("Genres: " + ", ".join(categories))
    return ". ".join(p for p in parts if p) or ""


def _natural(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def text_matrix(dataset: Dataset, vocab_items: list[str], settings: Settings) -> np.ndarray | None:
    """[V+1, 384] MiniLM vectors in vocabulary order (row 0 = padding), cached by text hash."""
    if dataset.texts is None:
        return None
    from training.text_encoder import cached_item_vectors

    texts = [dataset.texts.get(item, "") for item in vocab_items]
    vectors = cached_item_vectors(
        texts, settings.triton.model_repository, settings.artifacts / "text-vectors"
    )
    return np.vstack([np.zeros((1, vectors.shape[1]), dtype=np.float32), vectors])


def checkpoint_path(settings: Settings, tag: str, variant: str, seed: int,
                    fingerprint: str) -> Path:
    return settings.artifacts / "checkpoints" / tag / f"{variant}-seed{seed}-{fingerprint}.pt"


def run_fingerprint(config: TrainConfig, split: LeaveOneOut,
                    text_vectors: np.ndarray | None) -> str:
    """A short hash of everything a training run depends on: its configuration (seed and
    model included), the vocabulary, the users' sequences and the text vectors it uses."""
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    digest.update(json.dumps(split.vocab.items).encode())
    for seq in split.sequences:
        digest.update(np.asarray(seq, dtype=np.int64).tobytes() + b"|")
    if text_vectors is not None and config.model.use_text:
        digest.update(np.ascontiguousarray(text_vectors, dtype=np.float32).tobytes())
    return digest.hexdigest()[:10]


def variant_config(variant: str, seed: int, text_vectors: np.ndarray | None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The training configuration of ``variant`` (``text+id``, ``id``, ``text+id-cold``)."""
    from training.model import ModelConfig
    from training.train import TrainConfig

    use_text = variant.removesuffix("-cold") == "text+id" and text_vectors is not None
    return TrainConfig(seed=seed, model=ModelConfig(use_text=use_text)).with_overrides(
        **(overrides or {}))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_variant(
    dataset: Dataset,
    split: LeaveOneOut,
    text_vectors: np.ndarray | None,
    variant: str,
    seed: int,
    path: Path,
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    init_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one variant, save its checkpoint (with valid/test metrics); return the metrics."""
    from training.evaluate import evaluate, loo_cases
    from training.train import save_checkpoint, score_histories, train_model

    config = variant_config(variant, seed, text_vectors, overrides)
    use_text = config.model.use_text
    result = train_model(split, text_vectors if use_text else None, config, progress=progress,
                         init_state=init_state)
    metrics = evaluate(lambda h: score_histories(result.model, h), loo_cases(split, "test"),
                       split.train_counts())
    save_checkpoint(result, path, {
        "metrics": metrics, "data": dataset.data_range(), "variant": variant, **(extra or {}),
    })
    log(f"{variant} seed {seed}: {result.epochs_run} epochs (best {result.best_epoch}, "
        f"stopped by {result.stop_reason}) in "
        f"{result.seconds:.0f} s; valid ndcg@10 {result.valid['ndcg@10']:.4f}, "
        f"test ndcg@10 {metrics['ndcg@10']:.4f} -> {path}")
    return metrics
