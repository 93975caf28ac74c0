"""A first model for the demo: when ``model_repository/`` has no version, train a small one.

``streamrec demo`` calls :func:`ensure_demo_model` so that its recommendations come from the
model through Triton on a fresh machine. The model is small and time-boxed (about a minute
on 2 cores); ``streamrec train`` trains the full one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamrec.core.config import Settings
from streamrec.core.versions import latest_version

DEMO_EPOCHS = 12
DEMO_BUDGET_S = 75.0


def has_version(settings: Settings) -> bool:

    return latest_version(settings.triton.model_repository / settings.triton.model_name) is not None


def ensure_demo_model(settings: Settings, say: Callable[[str], object] = print) -> int | None:
    """Publish a small model if there is none; returns the new version (None when one existed)."""
    if has_version(settings):
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        say("no model version and no torch (train extra) to train one: serving the fallback")
        return None
    from training.data import LeaveOneOut, movielens_catalog, movielens_interactions
    from training.export import publish_version
    from training.text_encoder import cached_item_vectors
    from training.train import TrainConfig, save_checkpoint, train_model

    triton = settings.triton
    say(f"no model in {triton.model_repository}/{triton.model_name}: training a small "
        f"demo model first (about a minute; `streamrec train` trains the full one)")
    catalog = movielens_catalog()
    split = LeaveOneOut.from_interactions(movielens_interactions(), [c.item_id for c in catalog])
    texts = {c.item_id: c.text for c in catalog}
    vectors = cached_item_vectors(
        [texts.get(i, i) for i in split.vocab.items], settings.triton.model_repository,
        settings.artifacts / "cache",
    )
    text_vectors = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    config = TrainConfig(epochs=DEMO_EPOCHS, time_budget_s=DEMO_BUDGET_S, patience=3)
    result = train_model(split, text_vectors, config)
    checkpoint = Path(settings.artifacts) / "checkpoints" / "demo.pt"
    save_checkpoint(result, checkpoint, {"data": {"dataset": "ml-100k", "purpose": "demo"}})
    version = publish_version(checkpoint, triton.model_repository, triton.model_name,
                              metrics={"valid": result.valid})
    say(f"published {settings.triton.model_name}:{version} (valid NDCG@10 "
        f"{result.valid['ndcg@10']:.4f}, {result.epochs_run} epochs, {result.seconds:.0f} s)")
    return version
