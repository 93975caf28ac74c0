"""Fine-tuning the sequence recommender: full-softmax next-item prediction.

Cross-entropy over the whole catalogue at every position of a sequence window (not one sampled
negative), ``torch.optim.AdamW`` with linear warmup then cosine decay, dropout, weight decay,
ID dropout, early stopping on validation NDCG@10, fixed seeds, best-state checkpoint.

``exclude_history``: the softmax at a position leaves out the items the user consumed before it
(the target excepted), as the evaluation and serving do (a user's seen items are never
recommended): no capacity goes into ranking already-seen items low.

Epochs and early stopping decide when training ends; ``time_budget_s`` is an explicit opt-in
(``None`` by default), so results do not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import math
import pickle
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamrec.core.atomic import replace_atomically, write_json_atomic
from streamrec.core.config import UserError
from streamrec.core.metrics import mask_scores, ranking_metrics, target_ranks
from training.data import LeaveOneOut, Vocabulary, pad_left
from training.model import ModelConfig, SequenceRecommender


@dataclass
class TrainConfig:
    """How to train; the model's own hyperparameters are ``model`` (defined once there)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    epochs: int = 20  # the cosine schedule ends here
    batch_size: int = 64
    lr: float = 3.8e-3  # the Optuna study's (ModelConfig.dropout says more)
    weight_decay: float = 0.037
    warmup_epochs: int = 1
    patience: int = 3
    time_budget_s: float | None = None  # opt-in wall-clock limit; epochs and patience decide
    exclude_history: bool = True  # leave the user's earlier items out of each softmax
    # one intra-op thread: on a loaded 2-core machine two threads were 10x slower (spin waits)
    threads: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def model_config(self, n_items: int, extra_dims: list[int] | None = None) -> ModelConfig:
        """The model's configuration for a vocabulary of ``n_items`` (with padding); ID
        dropout only where there is content to score an item without its ID."""
        return replace(self.model, n_items=n_items, extra_dims=list(extra_dims or []),
                       id_dropout=self.model.id_dropout if self.model.use_text else 0.0)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; model hyperparameters (``dim``, ``layers``, ...) go to
        ``model``, the rest to the training fields.

        >>> TrainConfig().with_overrides(dim=32, epochs=3).model.dim
        32
        """
        model_fields = {f.name for f in fields(ModelConfig)}
        model = {k: v for k, v in changes.items() if k in model_fields}
        train = {k: v for k, v in changes.items() if k not in model_fields}
        return replace(self, model=replace(self.model, **model), **train)

    @property
    def variant(self) -> str:
        use_text, use_ids = self.model.use_text, self.model.use_ids
        return "text+id" if use_text and use_ids else ("text" if use_text else "id")


@dataclass
class TrainResult:
    model: SequenceRecommender
    vocab: Vocabulary
    config: TrainConfig
    valid: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict[str, float]]
    stop_reason: str = "epochs"  # epochs | early_stopping | time_budget | pruned


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_windows(sequences: list[list[int]], max_len: int) -> np.ndarray:
    """Windows of ``max_len + 1`` items cut from the end of each sequence (stride ``max_len``).

    Every position of every window predicts its next item, so each training interaction is a
    target once.
    """
    return pad_left([seq[start:end] for seq, start, end in _window_bounds(sequences, max_len)],
                    max_len + 1)


def window_prefixes(sequences: list[list[int]], max_len: int) -> list[np.ndarray]:
    """For each window of :func:`training_windows` (same order), the user's items before it."""
    return [np.unique(np.asarray(seq[:start], dtype=np.int64))
            for seq, start, _ in _window_bounds(sequences, max_len)]


def _window_bounds(sequences: list[list[int]], max_len: int) -> list[tuple[list[int], int, int]]:
    bounds = []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            start = max(0, end - (max_len + 1))
            bounds.append((seq, start, end))
            end = start + 1 if start > 0 else 0
    return bounds


def history_mask(inputs: torch.Tensor, labels: torch.Tensor, prefix: torch.Tensor,
                 n_items: int) -> torch.Tensor:
    """[B, L, V] bool: at each position, the items consumed up to it (window ``inputs`` [B, L]
    and the items before the window, ``prefix`` [B, V] bool), the position's target excepted,
    padding always. Computed by comparing each item's first position in the window with the
    position, so no [B, L, V] cumulative sum is needed."""
    b, n = inputs.shape
    first = torch.full((b, n_items), n, dtype=torch.long)
    positions = torch.arange(n).expand(b, n)
    first.scatter_reduce_(1, inputs, positions, reduce="amin")
    seen = first.unsqueeze(1) <= torch.arange(n).view(1, n, 1)
    seen |= prefix.unsqueeze(1)
    seen[..., 0] = True
    seen.scatter_(2, labels.unsqueeze(-1), False)
    return seen


def score_histories(
    model: SequenceRecommender,
    histories: list[list[int]],
    batch_size: int = 512,
    *,
    new_item_text: np.ndarray | None = None,
) -> np.ndarray:
    """[B, V] next-item scores for each history (the model in eval mode).

    ``new_item_text`` [N, 384]: items outside the trained vocabulary, appended as rows
    ``V .. V+N-1`` computed from their text alone (:meth:`ItemEncoder.new_item_vectors`, what
    ``item_tower.onnx`` gives a newly published item at serving time).
    """
    model.eval()
    out = []
    with torch.no_grad():
        table = model.items.table()
        if new_item_text is not None:
            appended = model.items.new_item_vectors(torch.from_numpy(
                np.asarray(new_item_text, dtype=np.float32)))
            table = torch.cat([table, appended])
        for start in range(0, len(histories), batch_size):
            seq = torch.from_numpy(pad_left(histories[start : start + batch_size],
                                            model.config.max_len))
            out.append(model.score_last(seq, table).numpy())
    return np.concatenate(out) if out else np.zeros((0, table.shape[0]))


def evaluate_scores(
    scores: np.ndarray, targets: np.ndarray, excluded: list[list[int]]
) -> dict[str, float]:
    """Full-ranking metrics, own history excluded, and the unexcluded ranking under ``_all``."""
    masked = mask_scores(scores, excluded, keep=targets)
    metrics = ranking_metrics(target_ranks(masked, targets))
    metrics.update(ranking_metrics(target_ranks(mask_scores(scores, None), targets), "_all"))
    return metrics


def train_model(
    split: LeaveOneOut,
    text_vectors: np.ndarray | None,
    config: TrainConfig,
    *,
    progress: bool = True,
    init_state: dict[str, torch.Tensor] | None = None,
    extra_vectors: list[np.ndarray] | None = None,
    on_epoch: Callable[[int, dict[str, float]], bool] | None = None,
) -> TrainResult:
    """Train on ``split``'s training sequences; early-stop on its validation NDCG@10.

    ``text_vectors`` [V, 384] (row 0 = padding) are the frozen MiniLM item vectors;
    ``extra_vectors`` (e.g. image embeddings, each [V, d_k]) join the same fusion.
    ``on_epoch(epoch, valid_metrics)`` returning True stops training (``stop_reason``
    ``"pruned"``: a hyperparameter search dropping a poor trial).
    ``init_state`` warm-starts from earlier weights (see :func:`warm_start_state`).
    """
    started = time.monotonic()
    seed_everything(config.seed)
    torch.set_num_threads(config.threads)
    n_items = split.vocab.table_rows
    model_config = config.model_config(n_items, [v.shape[1] for v in extra_vectors or []])
    model = SequenceRecommender(
        model_config,
        torch.from_numpy(text_vectors) if text_vectors is not None else None,
        [torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in extra_vectors or []],
    )
    if init_state is not None:
        model.load_state_dict(init_state, strict=False)
    train_sequences = split.train_sequences()
    windows = torch.from_numpy(training_windows(train_sequences, model_config.max_len))
    prefixes = window_prefixes(train_sequences, model_config.max_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(windows) / config.batch_size))
    total = steps_per_epoch * config.epochs
    warmup = steps_per_epoch * config.warmup_epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _warmup_cosine(step, warmup, total)
    )
    histories, targets, excluded = split.eval_cases("valid")
    best: dict[str, float] = {"ndcg@10": -1.0}
    best_state: dict[str, torch.Tensor] = {}
    best_epoch, stale, epoch = 0, 0, 0
    stop_reason = "epochs"
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc=f"train {config.variant} seed {config.seed}",
               file=sys.stderr, disable=not progress, leave=False)
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(windows), generator=generator)
        losses = []
        for start in range(0, len(windows), config.batch_size):
            batch = windows[order[start : start + config.batch_size]]
            inputs, labels = batch[:, :-1], batch[:, 1:]
            drop = None
            if model_config.use_text and model_config.use_ids and model_config.id_dropout > 0:
                drop = torch.rand(n_items, generator=generator) < model_config.id_dropout
            real = labels != 0
            logits = model(inputs, drop, real)
            if config.exclude_history:
                rows = order[start : start + config.batch_size]
                prefix = torch.zeros(len(rows), n_items, dtype=torch.bool)
                for row, window in enumerate(rows.tolist()):
                    prefix[row, prefixes[window]] = True
                seen = history_mask(inputs, labels, prefix, n_items)[real]
                logits = logits.masked_fill(seen, -1e9)
            loss = torch.nn.functional.cross_entropy(logits, labels[real])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        valid = evaluate_scores(score_histories(model, histories), targets, excluded)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **valid})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", ndcg=f"{valid['ndcg@10']:.4f}")
        if valid["ndcg@10"] > best["ndcg@10"]:
            best, best_epoch, stale = valid, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale >= config.patience:
            stop_reason = "early_stopping"
            break
        if on_epoch is not None and on_epoch(epoch, valid):
            stop_reason = "pruned"
            break
        if config.time_budget_s is not None and time.monotonic() - started > config.time_budget_s:
            stop_reason = "time_budget"
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, split.vocab, config, best, best_epoch, epoch + 1,
                       time.monotonic() - started, history, stop_reason)


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# --- checkpoints ---------------------------------------------------------------------------
def save_checkpoint(result: TrainResult, path: Path, extra: dict[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state": result.model.state_dict(),
        "model_config": result.model.config.to_json(),
        "train_config": asdict(result.config),
        "vocab": result.vocab.to_json(),
        "valid": result.valid,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "stop_reason": result.stop_reason,
        "history": result.history,
        **(extra or {}),
    }
    # everything but the tensors as plain JSON types, so that loading needs no pickled objects
    # (torch.load(weights_only=True) refuses anything else)
    payload = {"state": payload.pop("state"), **json.loads(json.dumps(payload))}
    replace_atomically(path, lambda tmp: torch.save(payload, tmp))
    write_json_atomic(path.with_suffix(".json"),
                      {k: v for k, v in payload.items() if k != "state"})


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's payload: tensors and plain JSON types only.

    ``weights_only=True``: the path may come from a model card, and unpickling arbitrary
    objects from it would run code; a checkpoint holding anything else is refused.
    """
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: not a plain checkpoint (tensors and JSON types only): "
                        f"{str(exc).splitlines()[0]}") from exc


def load_checkpoint(path: Path) -> tuple[SequenceRecommender, Vocabulary, dict[str, Any]]:
    payload = read_checkpoint(path)
    # a checkpoint written before the score bias existed has no such key: no bias then
    config = ModelConfig(**{"item_bias": False, **payload["model_config"]})
    model = SequenceRecommender(config)
    model.load_state_dict(payload["state"])
    model.eval()
    return model, Vocabulary.from_json(payload["vocab"]), payload



def warm_start_state(checkpoint: Path, vocab: Vocabulary) -> dict[str, torch.Tensor]:
    """A checkpoint's weights re-indexed to ``vocab`` (fine-tuning a live version on new data).

    Item rows (ID embeddings, score biases) are matched by item id; items the checkpoint never
    saw get fresh random ID rows and the new-item bias; content buffers (text vectors) come
    from the new data, not from here.
    """
    payload = read_checkpoint(checkpoint)
    old = Vocabulary.from_json(payload["vocab"])
    state = {k: v for k, v in payload["state"].items() if not k.startswith("items.content_")}
    return reindex_item_rows(state, old, vocab, new_id_rows="random")


def reindex_item_rows(state: dict[str, torch.Tensor], old: Vocabulary, vocab: Vocabulary,
                      *, new_id_rows: str) -> dict[str, torch.Tensor]:
    """``state``'s per-item rows (ID embedding, score bias) re-indexed from ``old`` to ``vocab``
    by item id. An item ``old`` lacks gets the new-item bias and, as its ID row, the learned
    new-item ID (``new_id_rows="new"``: its row is then exactly the row serving gives a new
    item) or a random row (``"random"``)."""
    pairs = [(i, old.index_of[item]) for i, item in enumerate(vocab.items, start=1)
             if item in old.index_of]
    new_rows, old_rows = (list(x) for x in zip(*pairs, strict=True)) if pairs else ([], [])
    key = "items.id_embedding.weight"
    if key in state:
        weights = state[key]
        if new_id_rows == "new":
            new_id = state.get("items.new_item_id", torch.zeros(weights.shape[1]))
            fresh = new_id.expand(vocab.table_rows, -1).clone()
        else:
            fresh = torch.randn(vocab.table_rows, weights.shape[1]) * weights.shape[1] ** -0.5
        fresh[0] = 0.0
        fresh[new_rows] = weights[old_rows]
        state[key] = fresh
    key = "items.item_bias.weight"
    if key in state:
        bias = torch.full((vocab.table_rows, 1),
                          float(state.get("items.new_item_bias", torch.zeros(1))[0]))
        bias[0] = 0.0
        bias[new_rows] = state[key][old_rows]
        state[key] = bias
    return state
