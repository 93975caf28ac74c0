"""What the re-ranker knows about a candidate: one row of :data:`FEATURES` per candidate.

:class:`CandidateFeatures` turns a candidate list (model top-K, co-visited, trending) into a
(len(candidates), len(FEATURES)) matrix in one pass: the model's score and rank, trending and
co-visitation scores, the user's decayed affinity to the item's categories, and the item's
recency and age on event time (:class:`ItemClock`). :class:`ListStats` holds the list's
normalisers, computed once per list.

>>> from streams.engine import Candidate
>>> features = CandidateFeatures(ItemClock())
>>> x = features.of(Candidate("a", model_score=3.0, model_rank=0))
>>> x["in_model"], x["model_rr"], x["trend"]
(1.0, 1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from streams.engine import Candidate, RankingContext

FEATURES = (
    "in_model",  # 1 when the model proposed it
    "model_rr",  # 1 / (1 + model rank)
    "model_lr",  # 1 - log(1 + model rank) / log(1 + RANK_SCALE): click odds fall ~ log rank
    "model_z",  # model score standardised within the list
    "covis",  # co-visitation count / (1 + count)
    "covis_last",  # co-visited after the user's very last item
    "trend",  # log(1 + trending count) / log(1 + top trending count)
    "trend_rr",  # 1 / (1 + trending rank)
    "trend_lr",  # 1 - log(1 + trending rank) / log(1 + RANK_SCALE)
    "affinity",  # the user's decayed interest share of the item's categories
    "recency",  # 0.5 ** (time since the item's last click / recency half-life)
    "freshness",  # 0.5 ** (item age / age half-life); 0 for items never clicked
)

MODEL_FEATURES = ("in_model", "model_rr", "model_lr", "model_z")
# what these features' weights say holds for one regime: after an interest drift the user's
# decayed affinity points to the old interests, and what was learned about an item's recency
# and age (e.g. "fresh items are rarely clicked") works against the new items a drift brings
REGIME_FEATURES = ("affinity", "recency", "freshness")
RANK_SCALE = 50

HOUR_MS = 3600 * 1000


class ItemClock:
    """First and last time (event time) each item was clicked, by anyone."""

    def __init__(self) -> None:
        self.first_seen: dict[str, int] = {}
        self.last_seen: dict[str, int] = {}

    def learn_one(self, item_id: str, ts: int) -> ItemClock:
        first = self.first_seen.get(item_id)
        if first is None or ts < first:
            self.first_seen[item_id] = ts
        if ts > self.last_seen.get(item_id, -1):
            self.last_seen[item_id] = ts
        return self

    def merge(self, other: ItemClock) -> ItemClock:
        for item, ts in other.first_seen.items():
            self.learn_one(item, ts)
        for item, ts in other.last_seen.items():
            self.learn_one(item, ts)
        return self


@dataclass(slots=True)
class ListStats:
    """Per-list normalisers, computed once per list."""

    model_mean: float
    model_std: float
    top_trending: float
    _interest_total: float | None = None

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> ListStats:
        scores = [c.model_score for c in candidates if c.model_score is not None]
        mean = sum(scores) / len(scores) if scores else 0.0
        var = sum((s - mean) ** 2 for s in scores) / len(scores) if scores else 0.0
        top = max((c.trending_score for c in candidates), default=0.0)
        return cls(mean, math.sqrt(var), top)

    def interest_total(self, state: Any, now: int, half_life_ms: int) -> float:
        if self._interest_total is None:
            self._interest_total = sum(
                state.interest(cat, now, half_life_ms) for cat in state.interests
            )
        return self._interest_total


class CandidateFeatures:
    """The feature rows of candidates, from the item clock and three half-lives (event time)."""

    def __init__(
        self,
        clock: ItemClock,
        recency_half_life_ms: int = HOUR_MS,
        age_half_life_ms: int = 24 * HOUR_MS,
        interest_half_life_ms: int = 7 * 24 * HOUR_MS,
    ) -> None:
        self.clock = clock
        self.recency_half_life_ms = recency_half_life_ms
        self.age_half_life_ms = age_half_life_ms
        self.interest_half_life_ms = interest_half_life_ms

    def matrix(
        self,
        candidates: Sequence[Candidate],
        context: RankingContext | None,
        stats: ListStats,
    ) -> np.ndarray:
        """The features (:data:`FEATURES`, one column each) of every candidate of one list, as
        a (len(candidates), len(FEATURES)) matrix; ``stats`` are the list's normalisers, and
        without ``context`` the user- and time-features stay 0."""
        n = len(candidates)
        col = {name: i for i, name in enumerate(FEATURES)}
        x = np.zeros((n, len(FEATURES)))
        nan = math.nan
        model_rank = np.array([nan if c.model_rank is None else c.model_rank
                               for c in candidates])
        in_model = ~np.isnan(model_rank)
        if in_model.any():
            r = model_rank[in_model]
            x[in_model, col["in_model"]] = 1.0
            x[in_model, col["model_rr"]] = 1.0 / (1.0 + r)
            x[in_model, col["model_lr"]] = _log_ranks(r)
            if stats.model_std > 0:
                score = np.array([nan if c.model_score is None else c.model_score
                                  for c in candidates])
                has = in_model & ~np.isnan(score)
                x[has, col["model_z"]] = (score[has] - stats.model_mean) / stats.model_std
        covis = np.array([c.covisit_anchor is not None for c in candidates])
        if covis.any():
            s = np.array([c.covisit_score for c in candidates])[covis]
            x[covis, col["covis"]] = s / (1.0 + s)
        trend_rank = np.array([nan if c.trending_rank is None else c.trending_rank
                               for c in candidates])
        trending = ~np.isnan(trend_rank)
        if trending.any():
            s = np.array([c.trending_score for c in candidates])[trending]
            r = trend_rank[trending]
            x[trending, col["trend"]] = np.log1p(s) / np.log1p(max(1.0, stats.top_trending))
            x[trending, col["trend_rr"]] = 1.0 / (1.0 + r)
            x[trending, col["trend_lr"]] = _log_ranks(r)
        if context is None:
            return x
        state, now = context.state, context.now_ts
        last_item = state.last_item
        if last_item is not None:
            x[:, col["covis_last"]] = [
                1.0 if c.covisit_anchor is not None and c.covisit_anchor == last_item else 0.0
                for c in candidates
            ]
        if state.interests:
            half_life = self.interest_half_life_ms
            total = stats.interest_total(state, now, half_life)
            if total > 0:
                # each category's decayed interest once per list, not once per candidate
                interest = {cat: state.interest(cat, now, half_life) for cat in state.interests}
                categories = context.catalog.categories
                x[:, col["affinity"]] = [
                    sum(interest.get(cat, 0.0) for cat in categories(c.item_id)) / total
                    for c in candidates
                ]
        last_seen, first_seen = self.clock.last_seen, self.clock.first_seen
        last = np.array([last_seen.get(c.item_id, nan) for c in candidates])
        known = ~np.isnan(last)
        if known.any():
            first = np.array([first_seen.get(c.item_id, nan) for c in candidates])[known]
            x[known, col["recency"]] = 0.5 ** (
                np.maximum(0.0, now - last[known]) / self.recency_half_life_ms)
            x[known, col["freshness"]] = 0.5 ** (
                np.maximum(0.0, now - first) / self.age_half_life_ms)
        return x

    def of(
        self,
        candidate: Candidate,
        context: RankingContext | None = None,
        stats: ListStats | None = None,
    ) -> dict[str, float]:
        """The feature dict of one candidate (``context`` adds the user- and time-features):
        its row of :meth:`matrix`."""
        row = self.matrix([candidate], context, stats or ListStats.of([candidate]))[0]
        return dict(zip(FEATURES, row.tolist(), strict=True))


def _log_ranks(ranks: np.ndarray) -> np.ndarray:
    """1 - log(1 + rank) / log(1 + RANK_SCALE), floored at 0, for each rank."""
    return np.maximum(0.0, 1.0 - np.log1p(ranks) / np.log1p(RANK_SCALE))
