"""One retrain: the training window, a candidate fine-tuned from live, the gate's verdict.

The trainer (:mod:`training.trainer`, ``streamrec trainer``) and the replay's adaptive loop
(:mod:`training.adaptive_loop`) both retrain through :class:`Retrainer`, so the replay
measures the trainer's own logic on its own clock. A retrain:

1. takes its events from the recent ones (:meth:`Retrainer.training_events`: the recent
   window, or the new regime after a drift, as :class:`~training.retrain_policy.RetrainPolicy`
   says);
2. holds out each recent user's last event (:func:`~training.holdout.holdout_split`);
3. fine-tunes a candidate from the live version on the rest
   (:func:`~training.fine_tune.fine_tune`, or an injected ``candidate_fn``);
4. asks the :class:`~training.gate.PromotionGate` whether the candidate beats live on the
   holdout.

What happens next (publish a version, or switch the replay's model source after a lag) is the
caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from training.data import Interactions
from training.fine_tune import FineTuneConfig, fine_tune
from training.gate import GateDecision, PromotionGate
from training.holdout import holdout_split
from training.retrain_policy import RetrainPolicy
from training.scored_model import ScoredModel

CandidateFn = Callable[[ScoredModel, Interactions], ScoredModel]
TextVectorsFn = Callable[[list[str]], np.ndarray | None]


def no_text_vectors(items: list[str]) -> np.ndarray | None:
    """No item text: candidates are trained on IDs only."""
    return None


@dataclass
class Retrainer:
    """When to retrain (``policy``), on which events, and whether the candidate passes (``gate``).

    ``text_vectors_for(items) -> [len(items)+1, 384] array or None`` gives the content rows of
    a candidate's vocabulary; ``candidate_fn(live, train)`` replaces the fine-tune (tests offer
    a candidate that must be rejected).
    """

    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    gate: PromotionGate = field(default_factory=PromotionGate)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    recent_events: int = 50_000
    min_regime_events: int = 2_000
    text_vectors_for: TextVectorsFn = no_text_vectors
    candidate_fn: CandidateFn | None = None

    def training_events(self, recent: Interactions, reason: str) -> tuple[Interactions, str]:
        """The events a retrain for ``reason`` uses and which window they are (``regime`` or
        ``recent``), from the time-ordered ``recent`` events."""
        return self.policy.training_events(recent, self.recent_events, self.min_regime_events,
                                           reason, self.gate.min_cases)

    def challenge(self, live: ScoredModel, events: Interactions, *, label: str,
                  seed: int | None = None) -> tuple[ScoredModel, GateDecision]:
        """A candidate fine-tuned from ``live`` on ``events`` less their holdout, and the gate's
        decision on that holdout (``seed`` overrides the fine-tune's)."""
        train, cases = holdout_split(events)
        if self.candidate_fn is not None:
            candidate = self.candidate_fn(live, train)
        else:
            config = self.finetune if seed is None else replace(self.finetune, seed=seed)
            candidate = fine_tune(live, train, self.text_vectors_for, config, label=label)
        return candidate, self.gate.decide(candidate.evaluate(cases), live.evaluate(cases))
