"""How much of a new cluster's click order can item text alone predict? (a drift-recovery probe)

The synthetic drift moves users to clusters whose items never occurred before; every recovery
so far comes from clicks on them (co-visitation, fine-tunes). A *content transition prior*
would let the recommender follow a new cluster's order from the first click: learn, on the
pre-drift clicks, which item text follows which (a low-rank bilinear map between the frozen
MiniLM vectors of consecutive items), then score the new items' successors through their text.

This module measures that prior before anyone wires it into serving: per seed, HR@10 of the
next item given the previous one on the post-drift clicks between new items, for

- ``cosine``: plain text similarity (the zero-shot prior),
- ``transition``: the learned text-to-text transition (among the new items, and among all),
- ``transition_seen``: the same map on the last pre-drift pairs (items it trained on), the
  level a prior would have to reach to stand in for the pre-drift hit rate.

Usage::

    python -m training.replay.content_transition --seeds 0 1 2 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.core.events import ClickEvent
from streamrec.core.metrics import hit_rate_at_k

K = 10


@dataclass
class TransitionPairs:
    """Consecutive (previous, next) item rows of each user, split at the drift."""

    before: np.ndarray  # [P, 2] pairs before the drift
    after_new: np.ndarray  # [Q, 2] pairs after it whose both items never occurred before it
    new_items: np.ndarray  # [N] bool: the item never occurred before the drift

    @classmethod
    def from_events(cls, events: Sequence[ClickEvent], drift_index: int,
                    row_of: dict[str, int]) -> TransitionPairs:
        last: dict[str, int] = {}
        before: list[tuple[int, int]] = []
        after: list[tuple[int, int]] = []
        for n, e in enumerate(events):
            item = row_of[e.item_id]
            prev = last.get(e.user_id)
            if prev is not None and prev != item:
                (before if n < drift_index else after).append((prev, item))
            last[e.user_id] = item
        new = np.ones(len(row_of), dtype=bool)
        seen_before = {row_of[e.item_id] for e in events[:drift_index]}
        new[list(seen_before)] = False
        pairs = np.asarray(after, dtype=np.int64).reshape(-1, 2)
        keep = new[pairs[:, 0]] & new[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
        return cls(np.asarray(before, dtype=np.int64).reshape(-1, 2), pairs[keep], new)


def hit_rate(scores_of: Callable[[np.ndarray], np.ndarray], pairs: np.ndarray,
             candidates: np.ndarray) -> float:
    """HR@10 of each pair's next item among ``candidates`` (bool per item), the previous
    item excluded; ties count against the target."""
    if not len(pairs):
        return 0.0
    scores = scores_of(pairs[:, 0]).astype(np.float64)
    scores[:, ~candidates] = -np.inf
    scores[np.arange(len(pairs)), pairs[:, 0]] = -np.inf
    target = scores[np.arange(len(pairs)), pairs[:, 1]]
    ranks = (scores >= target[:, None]).sum(axis=1) - 1
    return hit_rate_at_k(ranks, K)


class ContentTransition:
    """A low-rank bilinear transition between item text vectors: ``score(prev -> next) =
    (A x_prev) . (B x_next)``, trained with a full softmax over the items it learns on."""

    def __init__(self, vectors: np.ndarray, rank: int = 64, seed: int = 0) -> None:
        import torch

        torch.manual_seed(seed)
        self.vectors = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
        dim = self.vectors.shape[1]
        self.source = torch.nn.Linear(dim, rank)
        self.target = torch.nn.Linear(dim, rank)
        self.seed = seed

    def learn_many(self, pairs: np.ndarray, epochs: int = 30, batch_size: int = 512,
                   lr: float = 3e-3) -> float:
        """Train on ``pairs`` (softmax over the items they contain); the last batch's loss."""
        import torch

        items = torch.from_numpy(np.unique(pairs))
        data = torch.from_numpy(pairs)
        params = [*self.source.parameters(), *self.target.parameters()]
        optimizer = torch.optim.Adam(params, lr=lr)
        generator = torch.Generator().manual_seed(self.seed)
        loss = torch.zeros(())
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(data), batch_size):
                batch = data[order[start : start + batch_size]]
                logits = self.source(self.vectors[batch[:, 0]]) @ self.target(
                    self.vectors[items]).T
                labels = torch.searchsorted(items, batch[:, 1].contiguous())
                loss = torch.nn.functional.cross_entropy(logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return float(loss.item())

    def predict_many(self, previous: np.ndarray) -> np.ndarray:
        """[len(previous), N] transition scores of every item after each previous item."""
        import torch

        with torch.no_grad():
            rows = self.source(self.vectors[torch.from_numpy(previous)])
            return (rows @ self.target(self.vectors).T).numpy()


def cosine_scores(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return lambda previous: unit[previous] @ unit.T


def probe(events: Sequence[ClickEvent], drift_index: int, items: list[str],
          vectors: np.ndarray, seed: int = 0, epochs: int = 30) -> dict[str, float]:
    """The probe's hit rates for one stream (``vectors[i]`` is ``items[i]``'s text)."""
    pairs = TransitionPairs.from_events(events, drift_index,
                                        {item: i for i, item in enumerate(items)})
    model = ContentTransition(vectors, seed=seed)
    model.learn_many(pairs.before, epochs=epochs)
    everything = np.ones(len(items), dtype=bool)
    return {
        "cosine_hr@10_among_new": hit_rate(cosine_scores(vectors), pairs.after_new,
                                           pairs.new_items),
        "transition_hr@10_among_new": hit_rate(model.predict_many, pairs.after_new,
                                               pairs.new_items),
        "transition_hr@10_among_all": hit_rate(model.predict_many, pairs.after_new, everything),
        "transition_seen_hr@10": hit_rate(model.predict_many, pairs.before[-3_000:],
                                          ~pairs.new_items),
        "pairs_before": len(pairs.before),
        "pairs_after_new": len(pairs.after_new),
        "new_items": int(pairs.new_items.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from streamrec.core.config import Settings
    from training.replay.data import synthetic_data
    from training.text_encoder import ItemTextVectors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = Settings.from_env()
    results = []
    for seed in args.seeds:
        data = synthetic_data(seed=seed)
        assert data.texts is not None and data.drift_at is not None
        items = [c.item_id for c in data.catalog]
        text = ItemTextVectors(data.texts, settings.triton.model_repository,
                               settings.artifacts / "text-vectors")
        vectors = text.matrix(items)[1:]
        result = probe([*data.warm, *data.stream], len(data.warm) + data.drift_at, items,
                       vectors, seed=seed, epochs=args.epochs)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else
                                           f"{k} {v}" for k, v in result.items()),
              file=sys.stderr, flush=True)
        results.append(result)
    keys = [k for k, v in results[0].items() if isinstance(v, float)]
    summary = {k: {"mean": float(np.mean([r[k] for r in results])),
                   "std": float(np.std([r[k] for r in results]))} for k in keys}
    print(f"{'metric':<32} {'mean':>7} {'std':>7}")
    for k, v in summary.items():
        print(f"{k:<32} {v['mean']:>7.3f} {v['std']:>7.3f}")
    if args.json:
        print(json.dumps({"seeds": args.seeds, "per_seed": results, "summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
