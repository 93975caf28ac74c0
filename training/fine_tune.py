"""Fine-tuning the live version on recent events: the candidate a retrain offers the gate.

:func:`fine_tune` warm-starts from the live version (:func:`warm_state`: its weights
re-indexed by item id), extends the vocabulary with the new items and trains on recent
events with :func:`training.train.train_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from training.data import Interactions, LeaveOneOut, Vocabulary
from training.scored_model import ScoredModel


@dataclass
class FineTuneConfig:
    """Epochs and early stopping decide; ``time_budget_s`` is an explicit option (the live
    trainer's safety net), off by default so that a candidate does not depend on the load."""

    epochs: int = 15
    patience: int = 3
    lr: float = 5e-4
    time_budget_s: float | None = None
    seed: int = 0


def fine_tune(
    live: ScoredModel,
    train: Interactions,
    text_vectors_for: Any,
    config: FineTuneConfig,
    label: str,
    *,
    progress: bool = False,
) -> ScoredModel:
    """Fine-tune a copy of ``live`` on ``train`` (recent events), vocabulary extended.

    ``text_vectors_for(items) -> [len(items)+1, 384] array or None`` gives the content rows
    for the new vocabulary (row 0 = padding). The live model is not modified.
    """
    from training.train import TrainConfig, train_model

    split = LeaveOneOut.from_interactions(train, catalog=live.vocab.items)
    live_config = live.model.config
    text_vectors = text_vectors_for(split.vocab.items) if live_config.use_text else None
    budget = {} if config.time_budget_s is None else {"time_budget_s": config.time_budget_s}
    train_config = TrainConfig(
        model=replace(live_config, use_text=live_config.use_text and text_vectors is not None),
        seed=config.seed, epochs=config.epochs, patience=config.patience, lr=config.lr,
        warmup_epochs=0, **budget,
    )
    state = warm_state(live, split.vocab)
    result = train_model(split, text_vectors, train_config, progress=progress, init_state=state)
    return ScoredModel(result.model, split.vocab, label, result)


def warm_state(live: ScoredModel, vocab: Vocabulary) -> dict[str, Any]:
    """``live``'s weights re-indexed to ``vocab`` by item id; content buffers come from the new
    vocabulary's text, not from here.

    A new item's ID row starts at the learned new-item ID (and its bias at the new-item bias)
    when the model has text: its row is then exactly the text-only row that serving gives a
    new item (:meth:`ScoredModel.with_new_items`), so the
    candidate starts where live stands on the new items and the fine-tune moves them from
    there; a random row adds noise that a few epochs on the few post-drift events do not
    remove. An ID-only model has nothing else to start from: random rows."""
    from training.train import reindex_item_rows

    state = {k: v.clone() for k, v in live.model.state_dict().items()
             if not k.startswith("items.content_")}
    # rows added by a catalogue refresh have no ID embedding: live.base_vocab, not live.vocab
    return reindex_item_rows(state, live.base_vocab, vocab,
                             new_id_rows="new" if live.model.config.use_text else "random")
