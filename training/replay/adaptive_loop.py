"""The retraining loop inside the replay: the trainer's retrain, on the replay's clock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from streams.feedback import DRIFT, AdaptiveFeedback
from training.fine_tune import FineTuneConfig
from training.gate import PromotionGate
from training.retrain import Retrainer
from training.retrain_policy import RetrainPolicy

if TYPE_CHECKING:
    from training.replay.prequential import LiveModelSource, Replayer, VariantRun


class AdaptiveLoop:
    """The retraining loop inside the replay: the trainer's retrain, on the replay's clock.

    After each batch it drains the feedback's ``model-events`` (drift alarms), asks the
    :class:`~training.retrain_policy.RetrainPolicy` (drift or schedule) and retrains through
    the trainer's own :class:`~training.retrain.Retrainer` (fine-tune the live version on the
    recent events less their holdout, gate the candidate against live on that holdout); it
    switches the model source ``retrain_lag`` events later if the candidate passed. Every
    decision is a marker on the run.

    New items: as the worker's catalogue refresh does in production (an item on the ``items``
    topic is embedded and published as version N+1 within seconds), every
    ``catalog_refresh_every`` events the items the stream has shown that the live version does
    not know join it as text-only rows (:meth:`~training.scored_model.ScoredModel.with_new_items`).
    The replay's catalogue lists every item from the start, so an item's first click stands for
    its arrival.
    """

    def __init__(self, replayer: Replayer, source: LiveModelSource,
                 feedback: AdaptiveFeedback, run: VariantRun) -> None:
        self.replayer = replayer
        self.source = source
        self.feedback = feedback
        self.run = run
        opts = replayer.options
        self.retrainer = Retrainer(
            policy=RetrainPolicy(schedule_every=opts.retrain_every, cooldown=opts.retrain_lag,
                                 followups=opts.followups, followup_every=opts.followup_every),
            gate=PromotionGate(metric="ndcg@10", min_gain=0.0, min_cases=50),
            finetune=FineTuneConfig(epochs=opts.finetune_epochs, patience=opts.finetune_patience,
                                    seed=opts.seed),
            recent_events=opts.recent_events, min_regime_events=opts.min_regime_events,
            text_vectors_for=replayer.text_vectors_for,
        )
        self.pending: tuple[int, Any] | None = None
        self.version = 0
        self.arrived: set[str] = set()  # items seen in the stream so far
        self.read = 0  # stream events read into ``arrived``
        self.refreshed = 0  # stream position of the last catalogue refresh
        self.catalog_rows: tuple[np.ndarray, dict[str, int]] | None = None

    def after_batch(self, done: int) -> None:
        self.arrived.update(e.item_id for e in self.replayer.data.stream[self.read:done])
        self.read = done
        every = self.replayer.options.catalog_refresh_every
        if every and done - self.refreshed >= every:
            self.refresh_catalog(done)
        for event in self.feedback.drain_events():
            if event["type"] == DRIFT:
                self.run.markers.append({"type": DRIFT, "index": done, **event})
                self.retrainer.policy.learn_one(event)
        if self.pending is not None and done >= self.pending[0]:
            self.source.current = self.pending[1]
            self.run.markers.append({"type": "live", "index": done,
                                     "model": self.pending[1].label})
            self.pending = None
            if every:
                self.refresh_catalog(done)
        if self.pending is None:
            reason = self.retrainer.policy.decide(done)
            if reason is not None:
                self.retrain(done, reason)

    def refresh_catalog(self, done: int) -> None:
        self.refreshed = done
        current, texts = self.source.current, self.replayer.data.texts
        if texts is None or not current.model.config.use_text:
            return
        missing = sorted(i for i in self.arrived if i not in current.vocab.index_of and i in texts)
        if not missing:
            return
        if self.catalog_rows is None:  # the whole catalogue's text vectors, encoded once
            items = sorted(texts)
            vectors = self.replayer.text_vectors_for(items)
            if vectors is None:
                return
            self.catalog_rows = (vectors, {item: i for i, item in enumerate(items, start=1)})
        vectors, row_of = self.catalog_rows
        rows = vectors[[row_of[i] for i in missing]]
        self.source.current = current.with_new_items(missing, rows)
        counters = self.run.counters
        counters["catalog_refreshes"] = counters.get("catalog_refreshes", 0) + 1
        counters["catalog_items_added"] = counters.get("catalog_items_added", 0) + len(missing)

    def retrain(self, done: int, reason: str) -> None:
        """Retrain on the events replayed so far; a passing candidate goes live after the lag."""
        r, opts = self.replayer, self.replayer.options
        seen = [*r.data.warm, *r.data.stream[:done]][-max(opts.recent_events,
                                                         opts.min_regime_events):]
        events, window = self.retrainer.training_events(r.data.interactions(seen), reason)
        self.version += 1
        started = time.monotonic()
        candidate, decision = self.retrainer.challenge(
            self.source.current, events, label=f"sasrec:r{self.version}",
            seed=opts.seed + self.version)
        kind = "promote" if decision.promote else "reject"
        trained = candidate.result
        self.run.markers.append({"type": kind, "index": done, "reason": reason,
                                 "seconds": round(time.monotonic() - started, 1),
                                 "candidate": candidate.label, "window": window,
                                 "epochs": getattr(trained, "epochs_run", None),
                                 "stop_reason": getattr(trained, "stop_reason", None),
                                 **decision.to_json()})
        if decision.promote:
            self.pending = (done + opts.retrain_lag, candidate)
