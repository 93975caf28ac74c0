"""Rankers of the stream baselines: trending, co-visitation and River's online BiasedMF."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from streamrec.core.events import ClickEvent
from streams.engine import Candidate, RankingContext
from streams.state import UserState


class PopularRanker:
    """Most clicked in the trending window."""

    def rank(self, candidates: list[Candidate], context: RankingContext,
             k: int) -> list[tuple[Candidate, float]]:
        scored = [(c, c.trending_score) for c in candidates if c.trending_rank is not None]
        scored.sort(key=lambda cs: (-cs[1], cs[0].item_id))
        return scored[:k]


class CovisitRanker:
    """Co-visited after the user's recent items first, then trending."""

    def rank(self, candidates: list[Candidate], context: RankingContext,
             k: int) -> list[tuple[Candidate, float]]:
        def score(c: Candidate) -> float:
            if c.covisit_anchor is not None:
                return 1.0 + c.covisit_score
            return c.trending_score / (1.0 + c.trending_score)

        scored = [(c, score(c)) for c in candidates]
        scored.sort(key=lambda cs: (-cs[1], cs[0].item_id))
        return scored[:k]


class BiasedMFRanker:
    """River's ``reco.BiasedMF`` over the whole catalogue; learns from each click.

    Scoring every item through ``predict_one`` would cost one Python call per item, so the
    item factors and biases are mirrored into numpy arrays, updated for the items each
    ``learn_one`` touched (the scores are the model's own: mean + biases + dot product).
    """

    def __init__(self, items: list[str], n_factors: int = 16, negatives: int = 4,
                 seed: int = 0) -> None:
        from river import optim, reco

        self.mf = reco.BiasedMF(
            n_factors=n_factors, bias_optimizer=optim.SGD(0.02),
            latent_optimizer=optim.SGD(0.05), l2_bias=0.001, l2_latent=0.001, seed=seed,
        )
        self.items = list(items)
        self.index = {item: i for i, item in enumerate(self.items)}
        self.factors = np.zeros((len(self.items), n_factors))
        self.biases = np.zeros(len(self.items))
        self.negatives = negatives
        self.rng = random.Random(seed)

    def learn_click(self, user: str, item: str) -> None:
        if item not in self.index:
            return
        examples = [(item, 1.0)] + [
            (self.items[self.rng.randrange(len(self.items))], 0.0) for _ in range(self.negatives)
        ]
        for it, y in examples:
            self.mf.learn_one(user, it, y)
            row = self.index[it]
            self.factors[row] = self.mf.i_latents[it]
            self.biases[row] = self.mf.i_biases[it]

    def observe(self, state: UserState, event: ClickEvent) -> None:
        self.learn_click(event.user_id, event.item_id)

    def rank(self, candidates: list[Candidate], context: RankingContext,
             k: int) -> list[tuple[Candidate, float]]:
        user = context.state.user_id
        if user in self.mf.u_latents:
            scores = self.biases + self.factors @ self.mf.u_latents[user]
        else:
            scores = self.biases.copy()
        excluded = set(context.state.seen) | context.catalog.inactive
        for item in excluded:
            row = self.index.get(item)
            if row is not None:
                scores[row] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[: k + 1]
        top = sorted(top, key=lambda i: (-scores[i], i))[:k]
        return [(Candidate(self.items[i]), float(scores[i])) for i in top
                if np.isfinite(scores[i])]


class Observers:
    """Several feedback observers called in order."""

    def __init__(self, *observers: Any) -> None:
        self.observers = observers

    def observe(self, state: UserState, event: ClickEvent) -> None:
        for o in self.observers:
            o.observe(state, event)
