"""The frozen sequence model of the replay: trained on the warm events only, cached."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from streamrec.core.config import Settings
from training.replay.data import ReplayData

if TYPE_CHECKING:
    from training.replay.prequential import ReplayOptions


class ModelUnavailableError(Exception):
    """The sequence model cannot be trained or loaded here (e.g. torch is not installed)."""


def train_frozen(data: ReplayData, settings: Settings,
                 options: ReplayOptions) -> tuple[Any, dict[str, Any]]:
    """The sequence model trained on the warm events only (cached under artifacts/replay), and
    how its training went (``source`` trained or cached, epochs, stop reason, seconds).

    Epochs and early stopping decide (``options.train_epochs``, ``train_patience``), never the
    wall clock, so the frozen model, and every number measured with it, does not depend on how
    busy the machine was."""
    try:
        import torch  # noqa: F401

        from training.data import LeaveOneOut
        from training.scored_model import ScoredModel
        from training.train import TrainConfig, load_checkpoint, save_checkpoint, train_model
    except ImportError as exc:
        raise ModelUnavailableError(f"the model needs the train extra ({exc})") from exc
    given = {"epochs": options.train_epochs, "patience": options.train_patience,
             "lr": options.train_lr}
    config = TrainConfig(seed=options.seed, **{k: v for k, v in given.items() if v is not None})
    key = hashlib.sha256(json.dumps(
        [data.fingerprint(), asdict(config), data.texts is not None]).encode()).hexdigest()[:12]
    path = settings.artifacts / "replay" / f"{data.name}-frozen-{key}.pt"
    if path.exists():
        model, vocab, payload = load_checkpoint(path)
        return ScoredModel(model, vocab, "sasrec:frozen"), _training_info("cached", payload)
    warm = data.interactions(data.warm)
    split = LeaveOneOut.from_interactions(warm)
    replayer_texts = None
    if data.texts is not None:
        from training.pipeline import Dataset, text_matrix

        dataset = Dataset(data.name, warm, sorted(data.texts), data.texts)
        replayer_texts = text_matrix(dataset, split.vocab.items, settings)
    config.model.use_text = replayer_texts is not None
    result = train_model(split, replayer_texts, config, progress=options.progress)
    save_checkpoint(result, path, {"replay": data.name})
    print(f"frozen model: {result.epochs_run} epochs in {result.seconds:.0f} s "
          f"({result.stop_reason}), valid ndcg@10 {result.valid['ndcg@10']:.4f} -> {path}",
          file=sys.stderr)
    info = {"epochs_run": result.epochs_run, "stop_reason": result.stop_reason,
            "seconds": result.seconds, "valid": result.valid, "best_epoch": result.best_epoch}
    return ScoredModel(result.model, split.vocab, "sasrec:frozen"), _training_info("trained", info)


def _training_info(source: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "epochs_run": payload.get("epochs_run"),
            "best_epoch": payload.get("best_epoch"), "stop_reason": payload.get("stop_reason"),
            "seconds": round(float(payload.get("seconds") or 0.0), 1),
            "valid_ndcg@10": round(float((payload.get("valid") or {}).get("ndcg@10", 0.0)), 4)}
