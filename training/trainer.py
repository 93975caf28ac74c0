"""The trainer's decisions: retrain, publish what passes the gate, roll back what loses live.

:class:`Trainer` has no Kafka of its own (:mod:`training.trainer_service` is the wiring): it
learns from ``model-events`` (drift requests, the workers' ``hit_rate`` reports), retrains
through :class:`~training.retrain.Retrainer`, publishes a passing candidate with
:func:`training.export.publish_version`, rolls back through the version pin, and records every
decision (``retrain``, ``promote``, ``reject``, ``rollback``) as a model event in
:attr:`Trainer.decisions`; :attr:`Trainer.counters` counts them (the metric).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.core import versions
from streamrec.core.config import Settings, UserError
from streamrec.core.model_card import read_model_card
from streams.feedback import model_event
from training.data import Interactions
from training.fine_tune import FineTuneConfig
from training.gate import GateDecision, PromotionGate, PromotionWatch
from training.retrain import CandidateFn, Retrainer
from training.retrain_policy import RetrainPolicy
from training.scored_model import ScoredModel

log = logging.getLogger(__name__)


class Trainer:
    """Retrains when the policy says so, publishes what passes, rolls back what loses live."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: RetrainPolicy | None = None,
        gate: PromotionGate | None = None,
        watch: PromotionWatch | None = None,
        recent_events: int = 50_000,
        min_regime_events: int = 2_000,
        finetune: FineTuneConfig | None = None,
        candidate_fn: CandidateFn | None = None,
        texts: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.texts = texts
        self.retrainer = Retrainer(
            policy=policy or RetrainPolicy(schedule_every=None, cooldown=600.0),
            gate=gate or PromotionGate(), finetune=finetune or FineTuneConfig(),
            recent_events=recent_events, min_regime_events=min_regime_events,
            text_vectors_for=self._text_vectors, candidate_fn=candidate_fn,
        )
        self.watch = watch or PromotionWatch()
        self.counters = {"requests": 0, "retrain": 0, "promote": 0, "reject": 0, "rollback": 0}
        self.decisions: list[dict[str, Any]] = []
        from training.text_encoder import ItemTextVectors

        self._text_rows = None if texts is None else ItemTextVectors(
            texts, settings.triton.model_repository, settings.artifacts / "text-vectors")

    @property
    def policy(self) -> RetrainPolicy:
        return self.retrainer.policy

    @property
    def gate(self) -> PromotionGate:
        return self.retrainer.gate

    def learn_one(self, event: dict[str, Any]) -> Trainer:
        """A model event from the workers: a drift request or a ``hit_rate`` report."""
        if event.get("type") == "drift":
            self.counters["requests"] += 1
        self.policy.learn_one(event)
        self.watch.learn_one(event)
        return self

    # --- the model directory -------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.settings.triton.model_repository / self.settings.triton.model_name

    def live_version(self) -> int | None:
        return versions.live_version(self.settings.triton.model_repository,
                                     self.settings.triton.model_name)

    def load_version(self, version: int) -> ScoredModel:
        """A version's torch weights (its model card names the checkpoint)."""
        from training.train import load_checkpoint

        checkpoint = read_model_card(self.model_dir / str(version)).checkpoint
        if checkpoint is None:
            raise UserError(f"{self.model_dir.name}:{version} names no checkpoint to train from")
        model, vocab, _ = load_checkpoint(Path(checkpoint))
        live = ScoredModel(model, vocab, f"{self.settings.triton.model_name}:{version}")
        return with_served_rows(live, self.model_dir / str(version))

    # --- one retrain ---------------------------------------------------------------------
    def retrain(self, reason: str, recent: Interactions) -> dict[str, Any]:
        """Fine-tune from live on ``recent``'s training window, gate on its holdout, publish
        if it passes."""
        live_v = self.live_version()
        events, window = self.retrainer.training_events(recent, reason)
        started = {"reason": reason, "live_version": live_v, "events": len(events),
                   "window": window}
        self.emit("retrain", **started)
        if live_v is None:
            return self.emit("reject", **started, gate={"reason": "no live version to start from"})
        clock = time.monotonic()
        live = self.load_version(live_v)
        candidate, decision = self.retrainer.challenge(live, events, label="candidate")
        # where a retrain's wall-clock goes (`streamrec bench drift` reports it)
        timing = {"challenge_s": round(time.monotonic() - clock, 1), **fit_summary(candidate)}
        if not decision.promote:
            return self.emit("reject", **started, gate=decision.to_json(), timing=timing)
        clock = time.monotonic()
        version = self.publish(candidate, live_v, decision)
        timing["publish_s"] = round(time.monotonic() - clock, 1)
        new_label = f"{self.settings.triton.model_name}:{version}"
        self.watch.start(new=new_label, previous=live.label)
        return self.emit("promote", **started, version=version, model=new_label,
                         previous=live.label, gate=decision.to_json(), timing=timing)

    def publish(self, candidate: ScoredModel, parent: int, decision: GateDecision) -> int:
        from training.export import publish_version
        from training.train import save_checkpoint

        repository, name = self.settings.triton.model_repository, self.settings.triton.model_name
        checkpoint = (self.settings.artifacts / "checkpoints" / "trainer"
                      / f"{name}-from{parent}-{int(time.time())}.pt")
        save_checkpoint(candidate.result, checkpoint, {"metrics": decision.candidate,
                                                       "gate": decision.to_json()})
        version = publish_version(checkpoint, repository, name, metrics=decision.candidate,
                                  parent_version=parent, kind="retrain", reason=decision.reason)
        if versions.read_pin(repository, name):
            versions.write_pin(repository, name, version, "promoted by the trainer")
        versions.prune_after_publish(repository, name, self.settings.triton.keep_versions)
        return version

    def check_live(self) -> dict[str, Any] | None:
        """After a promotion: roll back when the new version clearly loses live."""
        previous, new = self.watch.previous, self.watch.new
        verdict = self.watch.decide()
        if verdict != "rollback" or previous is None or new is None:
            return None
        name = self.settings.triton.model_name
        target = int(previous.rsplit(":", 1)[1])
        pinned = versions.pin(self.settings.triton.model_repository, name, target,
                              f"rollback: {new} lost to {previous} live")
        return self.emit("rollback", model=new, to=f"{name}:{pinned}",
                         new_hit_rate=round(self.watch.rates(new), 4),
                         previous_hit_rate=round(self.watch.reference[1]
                                                 / max(1, self.watch.reference[0]), 4))

    def embed_texts(self, items: list[str] | None = None) -> int:
        """Embed the text of ``items`` (default: every item with text) that is not embedded
        yet, once per item for the trainer's life (:class:`ItemTextVectors`). Returns how
        many were embedded."""
        return 0 if self._text_rows is None else self._text_rows.embed(items)

    def _text_vectors(self, items: list[str]) -> np.ndarray | None:
        """[len(items)+1, 384] text rows in ``items``' order (row 0: padding)."""
        return None if self._text_rows is None else self._text_rows.matrix(items)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record a decision as a model event (the service puts it on ``model-events``)."""
        event = model_event(kind, source="trainer", **fields)
        self.counters[kind] = self.counters.get(kind, 0) + 1
        self.decisions.append(event)
        log.warning("model-events: %s", event)
        return event


def with_served_rows(live: ScoredModel, version_dir: Path) -> ScoredModel:
    """``live`` with the rows its served table has beyond the checkpoint's vocabulary: the items
    a catalogue refresh appended as text rows. The gate then compares a candidate with what is
    served; the checkpoint alone scores those items 0, which flattered every candidate trained
    after new items arrived."""
    import onnx
    from onnx import numpy_helper

    from training.catalog import TABLE

    served = versions.Vocabulary.load(version_dir)
    added = [item for item in served.items if item not in live.vocab.index_of]
    if not added:
        return live
    graph = onnx.load(str(version_dir / versions.MODEL_FILE)).graph
    table = next(numpy_helper.to_array(t) for t in graph.initializer if t.name == TABLE)
    return live.with_item_rows(added, table[[served.index_of[item] for item in added]])


def fit_summary(candidate: ScoredModel) -> dict[str, Any]:
    """The fine-tune of a candidate: seconds, epochs and why it stopped ({} when the candidate
    was not trained here, e.g. an injected ``candidate_fn``)."""
    result = candidate.result
    if result is None:
        return {}
    return {"fine_tune_s": round(result.seconds, 1), "epochs": result.epochs_run,
            "stop_reason": result.stop_reason}
