"""Online re-ranking with River: blend the candidate sources by what users click.

:class:`OnlineReranker` is a :class:`~streams.engine.Ranker`. For every candidate of a list
(model top-K, co-visited, trending) it builds a small feature dict (:data:`FEATURES`): the
model's score and rank, trending and co-visitation scores, the user's decayed affinity to the
item's categories, the item's recency and age (event time), and scores it with a River
``LogisticRegression`` trained one example at a time (``learn_one``) with an adaptive
optimizer (``optim.AdaGrad``). It starts from prior weights that reproduce the fixed blend (model
first, then co-visitation, then trending), so its first lists are as good as the blend's.

Feedback: :meth:`OnlineReranker.rank` remembers the features of the last list's candidates
per user (a bounded LRU, :class:`CandidateLog`). When the user's next click arrives,
:meth:`OnlineReranker.learn_feedback` learns the clicked item as a positive (when it was
among the candidates, shown or not) and the other candidates as negatives (shown ones, and
unshown ones with ``unshown_weight``); a click outside the candidates teaches nothing.
Classes are not re-weighted: the intercept absorbs the imbalance and the ranking only depends
on the other weights.

Drift response: :meth:`speed_up` shrinks the model's weights (lean on the fresh signals) and
multiplies the learning rate for a number of steps; :meth:`reset` returns to the prior.

Several workers (this object is not per user): each worker learns from its own partitions'
feedback, and every ``sync`` interval the workers exchange snapshots through Redis
(:func:`sync_through_redis`: each writes :meth:`to_dict` into one hash and merges the others).
:meth:`merge` averages the weights, weighted by how many examples each learned since the last
sync, so the merged model is the average of the workers' models, and the item clocks keep the
earliest first-seen and latest last-seen times. Optimizer moments stay local (they describe
each worker's own gradient history). We chose weight averaging over a shared Redis model
updated per example because it costs one round trip per interval instead of one per click.

>>> from streams.engine import Candidate
>>> r = OnlineReranker()
>>> x_model = r.features_of(Candidate("a", model_score=3.0, model_rank=0))
>>> x_trend = r.features_of(Candidate("b", trending_score=50.0, trending_rank=0))
>>> r.predict_one(x_model) > r.predict_one(x_trend)       # the prior: model first
True
>>> for _ in range(300):                                  # users keep clicking trending items
...     _ = r.learn_one(x_trend, True).learn_one(x_model, False)
>>> r.predict_one(x_model) < r.predict_one(x_trend)
True
"""

from __future__ import annotations

import json
import math
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from river import linear_model, optim

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

# the fixed blend (model first, then co-visitation, then trending) as initial weights
PRIOR_WEIGHTS = {
    "in_model": 1.5, "model_rr": 1.0, "model_lr": 3.0, "model_z": 0.2, "covis": 1.0,
    "covis_last": 0.2, "trend": 0.2, "trend_rr": 0.2, "trend_lr": 0.2, "affinity": 0.3,
    "recency": 0.0, "freshness": 0.0,
}


@dataclass
class RerankConfig:
    # AdaGrad: per-feature step sizes that shrink as evidence accumulates, so weights settle
    # where the click signal is weak (Adam's normalised steps kept them wandering on
    # MovieLens); a drift restarts it (speed_up)
    optimizer: str = "adagrad"  # adagrad | adam
    lr: float = 0.05
    l2: float = 0.0
    boost_factor: float = 2.0  # speed_up(): learning-rate multiplier ...
    boost_steps: int = 50_000  # ... for this many learn_one calls (~50 per click)
    model_shrink: float = 0.5  # speed_up(): the model's weights are multiplied by this
    recency_half_life_ms: int = 3600 * 1000
    age_half_life_ms: int = 24 * 3600 * 1000
    interest_half_life_ms: int = 7 * 24 * 3600 * 1000
    logged_users: int = 50_000  # users whose last candidate lists are kept for feedback
    logged_candidates: int = 50  # candidates kept per list (best first)
    unshown_weight: float = 1.0  # weight of a logged candidate that was not shown, as negative


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
class LoggedList:
    """The candidates of the last list sent to one user, for learning from the next click.

    ``items`` best first, the first ``n_shown`` of them shown; their features packed in one
    float32 array (``len(FEATURES)`` values per item) to keep the log small.
    """

    event_id: str
    items: list[str]
    n_shown: int
    packed: array

    @classmethod
    def from_rows(cls, event_id: str, items: list[str], rows: np.ndarray,
                  n_shown: int) -> LoggedList:
        """The list's ``items`` with their rows of a (len(items), len(FEATURES)) matrix."""
        packed = array("f")
        packed.frombytes(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
        return cls(event_id, items, n_shown, packed)

    @property
    def shown(self) -> list[str]:
        return self.items[: self.n_shown]

    def features(self, item_id: str) -> dict[str, float] | None:
        try:
            row = self.items.index(item_id)
        except ValueError:
            return None
        return self.row(row)

    def row(self, row: int) -> dict[str, float]:
        """The features of ``items[row]``."""
        n = len(FEATURES)
        return dict(zip(FEATURES, self.packed[row * n : (row + 1) * n], strict=True))


class CandidateLog:
    """A bounded LRU of :class:`LoggedList` by user (lost on restart: learning just skips)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lists: OrderedDict[str, LoggedList] = OrderedDict()

    def put(self, user_id: str, logged: LoggedList) -> None:
        self.lists[user_id] = logged
        self.lists.move_to_end(user_id)
        while len(self.lists) > self.capacity:
            self.lists.popitem(last=False)

    def get(self, user_id: str, event_id: str) -> LoggedList | None:
        logged = self.lists.get(user_id)
        return logged if logged is not None and logged.event_id == event_id else None


class OnlineReranker:
    """A River logistic regression over candidate features, learned from click feedback."""

    def __init__(self, config: RerankConfig | None = None) -> None:
        self.config = config or RerankConfig()
        self.clock = ItemClock()
        self.log = CandidateLog(self.config.logged_users)
        self.n_learned = 0
        self._since_sync = 0
        self._boost_left = 0
        self.model = self._new_model()

    def _new_model(self) -> linear_model.LogisticRegression:
        model = linear_model.LogisticRegression(
            optimizer=self._optimizer(self.config.lr), l2=self.config.l2, intercept_lr=0.01
        )
        for name, weight in PRIOR_WEIGHTS.items():
            model._weights[name] = weight
        model.intercept = -3.0  # clicks are rare among candidates
        return model

    # --- River's verbs ---------------------------------------------------------------------
    def predict_one(self, x: dict[str, float]) -> float:
        """The ranking score (the logit: monotone in the click probability)."""
        weights = self.model._weights
        return self.model.intercept + sum(weights.get(k, 0.0) * v for k, v in x.items())

    def predict_proba_one(self, x: dict[str, float]) -> float:
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, self.predict_one(x)))))

    def learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> OnlineReranker:
        if self._boost_left > 0:
            self._boost_left -= 1
            if self._boost_left == 0:
                self._set_lr(self.config.lr)
        self.model.learn_one(x, y, w)
        self.n_learned += 1
        self._since_sync += 1
        return self

    # --- the Ranker protocol ---------------------------------------------------------------
    def rank(
        self, candidates: list[Candidate], context: RankingContext, k: int
    ) -> list[tuple[Candidate, float]]:
        """Score and order the candidates; remember their features for the next feedback.

        The scores are :meth:`predict_one` of :meth:`features_of` for each candidate, computed
        for the whole list at once (one feature matrix, one dot product).
        """
        self.clock.learn_one(context.event.item_id, context.event.ts)
        if not candidates:
            self.log.put(context.state.user_id,
                         LoggedList(context.event.event_id, [], 0, array("f")))
            return []
        stats = _ListStats.of(candidates)
        matrix = self.feature_matrix(candidates, context, stats)
        weights = self.model._weights
        w = np.array([weights.get(name, 0.0) for name in FEATURES])
        scores = (matrix @ w + self.model.intercept).tolist()
        order = sorted(range(len(candidates)),
                       key=lambda i: (-scores[i], candidates[i].item_id))
        kept = order[: max(k, self.config.logged_candidates)]
        self.log.put(
            context.state.user_id,
            LoggedList.from_rows(
                context.event.event_id,
                [candidates[i].item_id for i in kept],
                matrix[kept],
                n_shown=min(k, len(order)),
            ),
        )
        return [(candidates[i], scores[i]) for i in order[:k]]

    def feature_matrix(
        self,
        candidates: Sequence[Candidate],
        context: RankingContext | None,
        stats: _ListStats,
    ) -> np.ndarray:
        """The features (:data:`FEATURES`, one column each) of every candidate of one list, as
        a (len(candidates), len(FEATURES)) matrix; ``stats`` are the list's normalisers, and
        without ``context`` the user- and time-features stay 0."""
        cfg = self.config
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
            total = stats.interest_total(state, now, cfg.interest_half_life_ms)
            if total > 0:
                # each category's decayed interest once per list, not once per candidate
                interest = {cat: state.interest(cat, now, cfg.interest_half_life_ms)
                            for cat in state.interests}
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
                np.maximum(0.0, now - last[known]) / cfg.recency_half_life_ms)
            x[known, col["freshness"]] = 0.5 ** (
                np.maximum(0.0, now - first) / cfg.age_half_life_ms)
        return x

    def features_of(
        self,
        c: Candidate,
        context: RankingContext | None = None,
        stats: _ListStats | None = None,
    ) -> dict[str, float]:
        """The feature dict of one candidate (``context`` adds the user- and time-features):
        its row of :meth:`feature_matrix`."""
        row = self.feature_matrix([c], context, stats or _ListStats.of([c]))[0]
        return dict(zip(FEATURES, row.tolist(), strict=True))

    # --- feedback --------------------------------------------------------------------------
    def learn_feedback(self, user_id: str, event_id: str, clicked: str) -> int:
        """Learn from the click that followed the list ``event_id`` sent to ``user_id``.

        The clicked item is a positive when it was among the logged candidates; the other
        logged candidates are negatives: the shown ones with weight 1, the unshown ones with
        ``unshown_weight``. Negatives from the shown items alone would be biased: they are
        exactly the top-ranked candidates while a positive is often an unshown one, so the
        learner would read "ranked high by the model" as "not clicked".
        Returns how many examples were learned (0 when that list is not in the log).
        """
        logged = self.log.get(user_id, event_id)
        if logged is None:
            return 0
        positive = logged.features(clicked)
        if positive is None:
            # the click is not among the candidates: the list says nothing about which of them
            # is better, and negatives alone would only push down whatever the candidates
            # share (after a drift: the co-visitation weight the recovery needs)
            return 0
        negatives: list[tuple[dict[str, float], float]] = []
        unshown_weight = self.config.unshown_weight
        for row, item in enumerate(logged.items):
            if item == clicked:
                continue
            weight = 1.0 if row < logged.n_shown else unshown_weight
            if weight > 0:
                negatives.append((logged.row(row), weight))
        # weight 1: weighting the rare positive by the negatives' total makes its gradient
        # dominate AdaGrad's accumulators, which then freeze every weight after a few clicks
        self.learn_one(positive, True)
        for x, weight in negatives:
            self.learn_one(x, False, weight)
        return len(negatives) + 1

    # --- drift response --------------------------------------------------------------------
    def speed_up(self, factor: float | None = None, steps: int | None = None) -> OnlineReranker:
        """The drift response: lean on the fresh signals and learn faster.

        The model's weights shrink by ``model_shrink`` (the model is what a drift makes stale;
        trending and co-visitation follow the stream by construction), the weights of the
        regime features (:data:`REGIME_FEATURES`) return to the prior, and the learning rate
        is multiplied by ``factor`` for the next ``steps`` examples. If the model is still
        good, its clicks bring its weights back.
        """
        weights = self.model._weights
        for name in MODEL_FEATURES:
            weights[name] = weights.get(name, 0.0) * self.config.model_shrink
        for name in REGIME_FEATURES:
            weights[name] = PRIOR_WEIGHTS[name]
        # the optimizer keeps its state: a fresh AdaGrad takes full-size, sign-like steps on
        # every example and, at ~50 examples per click, scrambles the weights
        self._set_lr(self.config.lr * (factor or self.config.boost_factor))
        self._boost_left = steps or self.config.boost_steps
        return self

    def reset(self) -> OnlineReranker:
        """Back to the prior blend (the item clock and the candidate log are kept)."""
        self.model = self._new_model()
        self._boost_left = 0
        return self

    def _optimizer(self, lr: float) -> optim.base.Optimizer:
        if self.config.optimizer == "adam":
            return optim.Adam(lr)
        return optim.AdaGrad(lr)

    def _set_lr(self, lr: float) -> None:
        self.model.optimizer.lr = optim.schedulers.Constant(lr)

    @property
    def weights(self) -> dict[str, float]:
        return {**dict(self.model._weights), "intercept": float(self.model.intercept)}

    # --- several workers: snapshots and merging --------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot: weights, counts, config and the item clock."""
        return {
            "weights": {k: float(v) for k, v in self.model._weights.items()},
            "intercept": float(self.model.intercept),
            "n_learned": self.n_learned,
            "since_sync": self._since_sync,
            "config": asdict(self.config),
            "first_seen": self.clock.first_seen,
            "last_seen": self.clock.last_seen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnlineReranker:
        r = cls(RerankConfig(**data.get("config", {})))
        r.model._weights.clear()
        for name, weight in data["weights"].items():
            r.model._weights[name] = weight
        r.model.intercept = data["intercept"]
        r.n_learned = int(data.get("n_learned", 0))
        r._since_sync = int(data.get("since_sync", 0))
        r.clock.first_seen = dict(data.get("first_seen", {}))
        r.clock.last_seen = dict(data.get("last_seen", {}))
        return r

    def merge(self, other: OnlineReranker) -> OnlineReranker:
        """Average weights with ``other`` (weighted by examples learned since the last sync)."""
        a, b = max(1, self._since_sync), max(1, other._since_sync)
        mine, theirs = self.model._weights, other.model._weights
        for name in set(mine) | set(theirs):
            mine[name] = (a * mine.get(name, 0.0) + b * theirs.get(name, 0.0)) / (a + b)
        self.model.intercept = (a * self.model.intercept + b * other.model.intercept) / (a + b)
        self.clock.merge(other.clock)
        return self


def _log_ranks(ranks: np.ndarray) -> np.ndarray:
    """1 - log(1 + rank) / log(1 + RANK_SCALE), floored at 0, for each rank."""
    return np.maximum(0.0, 1.0 - np.log1p(ranks) / np.log1p(RANK_SCALE))


@dataclass(slots=True)
class _ListStats:
    """Per-list normalisers, computed once per list."""

    model_mean: float
    model_std: float
    top_trending: float
    _interest_total: float | None = None

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> _ListStats:
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


async def sync_through_redis(
    reranker: OnlineReranker, redis: Any, key: str, worker_id: str
) -> int:
    """Publish this worker's snapshot into the hash ``key`` and merge every other worker's.

    Call it on a schedule (e.g. every 10 s). Returns the number of snapshots merged.
    """
    await redis.hset(key, worker_id, json.dumps(reranker.to_dict()))
    snapshots = await redis.hgetall(key)
    merged = 0
    for other_id, raw in snapshots.items():
        other_id = other_id.decode() if isinstance(other_id, bytes) else other_id
        if other_id == worker_id:
            continue
        reranker.merge(OnlineReranker.from_dict(json.loads(raw)))
        merged += 1
    reranker._since_sync = 0
    return merged
