"""The online re-ranker: a River logistic regression over candidate features.

:class:`OnlineReranker` is a :class:`~streams.engine.Ranker`. It scores each candidate's
features (:mod:`streams.rerank.features`) with a River ``LogisticRegression`` trained one
example at a time (``learn_one``) with an adaptive optimizer (``optim.AdaGrad``). It starts from
prior weights that reproduce the fixed blend (model first, then co-visitation, then trending),
so its first lists are as good as the blend's.

Feedback: :meth:`OnlineReranker.rank` remembers the features of the last list's candidates
per user (:class:`~streams.rerank.candidate_log.CandidateLog`). When the user's next click
arrives, :meth:`OnlineReranker.learn_feedback` learns the clicked item as a positive (when it
was among the candidates, shown or not) and the other candidates as negatives (shown ones, and
unshown ones with ``unshown_weight``); a click outside the candidates teaches nothing.
Classes are not re-weighted: the intercept absorbs the imbalance and the ranking only depends
on the other weights.

Drift response: :meth:`OnlineReranker.speed_up` shrinks the model's weights (lean on the fresh
signals) and multiplies the learning rate for a number of steps; :meth:`OnlineReranker.reset`
returns to the prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from river import linear_model, optim

from streams.rerank.candidate_log import CandidateLog, LoggedList
from streams.rerank.features import (
    FEATURES,
    MODEL_FEATURES,
    REGIME_FEATURES,
    CandidateFeatures,
    ItemClock,
    ListStats,
)

if TYPE_CHECKING:
    from streams.engine import Candidate, RankingContext

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


class OnlineReranker:
    """A River logistic regression over candidate features, learned from click feedback."""

    def __init__(self, config: RerankConfig | None = None) -> None:
        self.config = config or RerankConfig()
        self.clock = ItemClock()
        self.features = CandidateFeatures(
            self.clock,
            recency_half_life_ms=self.config.recency_half_life_ms,
            age_half_life_ms=self.config.age_half_life_ms,
            interest_half_life_ms=self.config.interest_half_life_ms,
        )
        self.log = CandidateLog(self.config.logged_users)
        self.n_learned = 0
        # examples learned since the weights were last exchanged with the other workers
        # (streams.rerank.exchange weighs each worker's weights by it)
        self.since_sync = 0
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
        if _plain_adagrad(self.model):
            _learn_one_adagrad(self.model, x, y, w)
        else:
            self.model.learn_one(x, y, w)
        self.n_learned += 1
        self.since_sync += 1
        return self

    def features_of(
        self,
        candidate: Candidate,
        context: RankingContext | None = None,
        stats: ListStats | None = None,
    ) -> dict[str, float]:
        """The feature dict of one candidate, what :meth:`predict_one` scores (``context`` adds
        the user- and time-features; ``stats`` are its list's normalisers)."""
        return self.features.of(candidate, context, stats)

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
            self.log.put(context.state.user_id, LoggedList.empty(context.event.event_id))
            return []
        matrix = self.features.matrix(candidates, context, ListStats.of(candidates))
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
        regime features (:data:`~streams.rerank.features.REGIME_FEATURES`) return to the
        prior, and the learning rate is multiplied by ``factor`` for the next ``steps``
        examples. If the model is still good, its clicks bring its weights back.
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


def _plain_adagrad(model: linear_model.LogisticRegression) -> bool:
    """Whether :func:`_learn_one_adagrad` reproduces ``model.learn_one`` (AdaGrad, no penalty,
    the log loss, constant intercept learning rate)."""
    return (type(model.optimizer) is optim.AdaGrad and model.l2 == 0 and model.l1 == 0
            and type(model.loss) is optim.losses.Log
            and type(model.intercept_lr) is optim.schedulers.Constant
            and type(model.optimizer.lr) is optim.schedulers.Constant)


def _learn_one_adagrad(
    model: linear_model.LogisticRegression, x: dict[str, float], y: bool, w: float
) -> None:
    """River's ``LogisticRegression.learn_one`` with AdaGrad, step for step and bit for bit
    (same operations in the same order), without its per-call machinery (a masked view of the
    weights, three ``VectorDict`` objects, generator chains, an exception per step): the
    feedback learns ~50 examples per click, and River's overhead was most of their cost."""
    weights = model._weights
    known = weights.to_dict()  # one copy: plain dict reads below
    optimizer = model.optimizer
    # the raw score, summed as River sums it: the known weights in their order, then the
    # features the model has not seen yet (zero-initialised, as River does)
    score = 0
    for key, weight in known.items():
        if key in x:
            score += weight * x[key]
    for key, value in x.items():
        if key not in known:
            initial = known[key] = model.initializer()
            weights[key] = initial
            score += initial * value
    loss_gradient = model.loss.gradient(y_true=y, y_pred=score + model.intercept) * w
    loss_gradient = float(max(min(loss_gradient, model.clip_gradient), -model.clip_gradient))
    model.intercept -= model.intercept_lr.get(optimizer.n_iterations) * loss_gradient
    g2, eps = optimizer.g2, optimizer.eps
    lr = optimizer.learning_rate
    for key, value in x.items():
        gradient = loss_gradient * value
        g2[key] += gradient**2
        weights[key] = known[key] - lr / (g2[key] + eps) ** 0.5 * gradient
    optimizer.n_iterations += 1
