"""The retraining loop: when to retrain, whether to promote, when to roll back, and the wiring.

Pure decision objects (no Kafka, no clock of their own; River's verbs):

- :class:`RetrainPolicy` learns from ``model-events`` (drift alarms are retrain requests) and
  a schedule, and decides when to retrain (one retrain per ``cooldown``).
- :class:`PromotionGate` compares a candidate with the live version on the same recent
  holdout (full ranking, :mod:`streamrec.core.metrics`) and promotes only a clear winner.
- :class:`PromotionWatch` is the live check after a promotion: it sums the workers'
  ``hit_rate`` reports per version and rolls back when the new version clearly loses to the
  previous one over a window (a two-proportion z-test).

Model steps (torch, imported inside functions): :class:`ScoredModel` (a trained model with its
vocabulary: top-K lists and full-ranking target ranks in item-id space, so versions with
different vocabularies compare on the same cases), :func:`fine_tune` (warm-start from the live
version, vocabulary extended with the new items, trained on recent events) and
:func:`holdout_split` (each recent user's last event is held out).

The Kafka wiring, :class:`TrainerService` (``streamrec trainer``), is thin: it consumes
``model-events`` (drift requests, the workers' ``hit_rate`` reports), replays recent clicks
with :func:`training.data.read_clicks_from_kafka`, fine-tunes, publishes a passing candidate
with :func:`training.export.publish_version`, rolls back through the version pin, and puts
every decision (``retrain``, ``promote``, ``reject``, ``rollback``) on ``model-events``;
:attr:`TrainerService.counters` counts them (the metric).

>>> policy = RetrainPolicy(schedule_every=1_000, cooldown=100)
>>> policy.decide(now=50) is None
True
>>> _ = policy.learn_one({"type": "drift", "request": "retrain"})
>>> policy.decide(now=60)
'drift'
>>> policy.decide(now=70) is None      # the retrain just happened
True
>>> policy.decide(now=1_060)
'schedule'
>>> gate = PromotionGate(metric="hr@10", min_gain=0.02, min_cases=10)
>>> gate.decide({"hr@10": 0.30, "n_cases": 100}, {"hr@10": 0.25, "n_cases": 100}).promote
True
>>> gate.decide({"hr@10": 0.25, "n_cases": 100}, {"hr@10": 0.25, "n_cases": 100}).reason
'candidate hr@10 0.2500 does not beat live 0.2500 by 2%'
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from streamrec.core import versions
from streamrec.core.metrics import ranking_metrics
from training.data import Interactions, LeaveOneOut, Vocabulary, pad_left

if TYPE_CHECKING:
    from training.model import SequenceRecommender


# --- when to retrain ---------------------------------------------------------------------------
@dataclass
class RetrainPolicy:
    """Retrain on a drift request or every ``schedule_every``, at most once per ``cooldown``.

    After a drift the data keeps changing, so the policy also follows up: ``followups``
    more retrains, ``followup_every`` apart (each on fresher post-drift data).
    ``now`` is any monotone clock the caller chooses (events replayed, event-time ms, seconds).
    """

    schedule_every: float | None = None
    cooldown: float = 0.0
    followups: int = 0
    followup_every: float | None = None
    last_retrain: float | None = None
    pending: str | None = None
    requests: int = 0
    followups_left: int = 0
    regime_since_ts: int | None = None  # event time of the latest drift (its ``ts``)

    def learn_one(self, event: dict[str, Any]) -> RetrainPolicy:
        if event.get("type") == "drift" or event.get("request") == "retrain":
            self.requests += 1
            self.pending = "drift" if event.get("type") == "drift" else "request"
            self.followups_left = self.followups
            if event.get("type") == "drift" and isinstance(event.get("ts"), int):
                self.regime_since_ts = event["ts"]
        return self

    def training_window(self, ts: list[int], recent_events: int, min_events: int,
                        reason: str | None = None) -> int:
        """Where a retrain's events start in the time-ordered event times ``ts``.

        Normally the last ``recent_events``. For the retrain a drift asked for and its
        follow-ups (``reason`` ``drift`` or ``followup``; ``None`` counts as one), the new
        regime: the events since the drift's event time (what ADWIN does to its own window),
        at least ``min_events`` (extended backwards, which also gives the first post-drift
        clicks their context), at most ``recent_events``; ``min_events = 0`` turns the regime
        window off. Trained on a window that is mostly pre-drift, a fine-tune spends its
        epochs on the old regime and its early stopping watches the old regime.

        >>> p = RetrainPolicy()
        >>> p.training_window(list(range(100)), recent_events=50, min_events=10)
        50
        >>> _ = p.learn_one({"type": "drift", "request": "retrain", "ts": 95})
        >>> p.training_window(list(range(100)), recent_events=50, min_events=10)
        90
        >>> p.training_window(list(range(100)), recent_events=50, min_events=2)
        95
        >>> p.training_window(list(range(100)), recent_events=50, min_events=2, reason="schedule")
        50
        """
        start = max(0, len(ts) - recent_events)
        if self.regime_since_ts is None or min_events <= 0 or reason in ("schedule", "request"):
            return start
        regime = bisect.bisect_left(ts, self.regime_since_ts)
        return max(start, min(regime, max(0, len(ts) - min_events)))

    def training_events(self, recent: Interactions, recent_events: int, min_events: int,
                        reason: str | None, min_cases: int) -> tuple[Interactions, str]:
        """The events a retrain uses and which window they are (``regime`` or ``recent``).

        The regime window (:meth:`training_window`) only when its holdout has at least
        ``min_cases`` users (each needs 3 events in it): a candidate the gate cannot judge is
        no drift response, and a short "drift" on a noisy stream leaves a window too thin to
        train on; then the recent window as usual.
        """
        recent_start = max(0, len(recent) - recent_events)
        start = self.training_window(recent.ts, recent_events, min_events, reason)
        if start != recent_start:
            regime = recent.slice(start, len(recent))
            if len(holdout_split(regime)[1].targets) >= min_cases:
                return regime, "regime"
        return recent.slice(recent_start, len(recent)), "recent"

    def decide(self, now: float) -> str | None:
        """The reason to retrain now (``drift``, ``request``, ``followup``, ``schedule``)."""
        if self.last_retrain is not None and now - self.last_retrain < self.cooldown:
            return None
        since = now - (self.last_retrain if self.last_retrain is not None else 0.0)
        reason = self.pending
        if reason is None and self.followups_left > 0 and self.followup_every is not None \
                and since >= self.followup_every:
            reason = "followup"
            self.followups_left -= 1
        if reason is None and self.schedule_every is not None and since >= self.schedule_every:
            reason = "schedule"
        if reason is not None:
            self.pending = None
            self.last_retrain = now
        return reason


# --- whether to promote ------------------------------------------------------------------------
@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    candidate: dict[str, float]
    live: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, "metric": self.metric,
                "candidate": _rounded(self.candidate), "live": _rounded(self.live)}


@dataclass(frozen=True)
class PromotionGate:
    """Promote when the candidate beats live on ``metric`` by ``min_gain`` (relative)."""

    metric: str = "ndcg@10"
    min_gain: float = 0.02
    min_cases: int = 50

    def decide(self, candidate: dict[str, float], live: dict[str, float] | None) -> GateDecision:
        m = self.metric
        cases = int(candidate.get("n_cases", 0))
        if cases < self.min_cases:
            return GateDecision(False, f"only {cases} holdout cases (< {self.min_cases})", m,
                                candidate, live or {})
        if live is None:
            return GateDecision(True, "no live version", m, candidate, {})
        c, v = candidate[m], live[m]
        if c > v * (1.0 + self.min_gain) and c > v:
            return GateDecision(True, f"candidate {m} {c:.4f} beats live {v:.4f}", m,
                                candidate, live)
        return GateDecision(
            False, f"candidate {m} {c:.4f} does not beat live {v:.4f} by {self.min_gain:.0%}",
            m, candidate, live,
        )


# --- after a promotion: the live check ---------------------------------------------------------
@dataclass
class PromotionWatch:
    """Compares the live hit rate of the new version with the previous one's.

    Feed it the workers' ``hit_rate`` events (:meth:`learn_one`). Before a promotion it keeps
    the previous version's counts as the reference; after :meth:`start`, once the new version
    has ``window`` outcomes, :meth:`decide` says ``rollback`` when its hit rate is below the
    reference by more than ``tolerance`` (relative) *and* the difference is significant
    (z > ``z``), else ``keep``; None while still watching.

    >>> w = PromotionWatch(window=1_000)
    >>> _ = w.learn_one({"type": "hit_rate", "versions": {"sasrec:1": {"n": 2000, "hits": 600}}})
    >>> w.start(new="sasrec:2", previous="sasrec:1")
    >>> _ = w.learn_one({"type": "hit_rate", "versions": {"sasrec:2": {"n": 1000, "hits": 200}}})
    >>> w.decide()
    'rollback'
    """

    window: int = 2_000
    tolerance: float = 0.1
    z: float = 2.0
    counts: dict[str, list[int]] = field(default_factory=dict)
    new: str | None = None
    previous: str | None = None
    reference: tuple[int, int] = (0, 0)

    def learn_one(self, event: dict[str, Any]) -> PromotionWatch:
        if event.get("type") != "hit_rate":
            return self
        for version, c in event.get("versions", {}).items():
            n_hits = self.counts.setdefault(version, [0, 0])
            n_hits[0] += int(c.get("n", 0))
            n_hits[1] += int(c.get("hits", 0))
        return self

    def start(self, new: str, previous: str) -> None:
        """A promotion happened: watch ``new`` against what ``previous`` achieved so far."""
        prev = self.counts.get(previous, [0, 0])
        self.reference = (prev[0], prev[1])
        self.counts[new] = [0, 0]
        self.new, self.previous = new, previous

    def decide(self) -> str | None:
        if self.new is None:
            return None
        n_new, h_new = self.counts.get(self.new, [0, 0])
        n_ref, h_ref = self.reference
        if n_new < self.window or n_ref == 0:
            return None
        p_new, p_ref = h_new / n_new, h_ref / n_ref
        pooled = (h_new + h_ref) / (n_new + n_ref)
        se = math.sqrt(max(pooled * (1 - pooled) * (1 / n_new + 1 / n_ref), 1e-12))
        worse = p_new < p_ref * (1.0 - self.tolerance) and (p_ref - p_new) / se > self.z
        self.new = None
        return "rollback" if worse else "keep"

    def rates(self, version: str) -> float:
        n, h = self.counts.get(version, [0, 0])
        return h / n if n else 0.0


# --- the model steps ---------------------------------------------------------------------------
class ScoredModel:
    """A trained sequence model and its vocabulary, answering in item ids.

    ``label`` names the version in feedback (e.g. ``sasrec:3``). The item table is computed
    once (the model is in eval mode and never changes after construction).
    """

    def __init__(self, model: SequenceRecommender, vocab: Vocabulary, label: str,
                 result: Any = None) -> None:
        import torch

        self.model = model.eval()
        self.vocab = vocab
        self.base_vocab = vocab  # the vocabulary the weights were trained on
        self.label = label
        self.result = result  # the TrainResult when this model was just trained
        with torch.no_grad():
            self.table = model.items.table()

    def with_new_items(self, items: list[str], text_vectors: np.ndarray) -> ScoredModel:
        """This version with ``items`` appended as text-only rows, same weights: the catalogue
        refresh that :mod:`training.catalog` does on the ONNX file, here in torch (the item
        tower turns each text vector into an item row; the ID source is missing)."""
        import torch

        with torch.no_grad():
            rows = self.model.items.new_item_vectors(
                torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)))
        extended = ScoredModel.__new__(ScoredModel)
        extended.model, extended.label, extended.result = self.model, self.label, self.result
        extended.vocab = Vocabulary([*self.vocab.items, *items])
        extended.base_vocab = self.base_vocab
        extended.table = torch.cat([self.table, rows])
        return extended

    def scores(self, sequences: list[list[str]]) -> np.ndarray:
        """[B, V] scores (row entries by vocabulary index; column 0 is padding)."""
        import torch

        encoded = [self.vocab.encode(s) for s in sequences]
        seq = torch.from_numpy(pad_left(encoded, self.model.config.max_len))
        with torch.no_grad():
            return self.model.score_last(seq, self.table).numpy()

    def recommend(
        self, sequences: list[list[str]], exclude: list[list[str]], k: int
    ) -> list[list[tuple[str, float]]]:
        scores = self.scores(sequences)
        scores[:, 0] = -np.inf
        out = []
        for row, excluded in zip(scores, exclude, strict=True):
            idx = [self.vocab.index[i] for i in excluded if i in self.vocab.index]
            row[idx] = -np.inf
            kk = min(k, len(row) - 1)
            top = np.argpartition(-row, kk - 1)[:kk]
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([(self.vocab.items[i - 1], float(row[i])) for i in top
                        if np.isfinite(row[i])])
        return out

    def target_ranks(self, cases: HoldoutCases) -> np.ndarray:
        """0-based full-ranking rank of each target (own history excluded); ``inf`` when the
        target is not in this version's vocabulary."""
        ranks = np.full(len(cases.targets), np.inf)
        for start in range(0, len(cases.targets), 512):
            stop = start + 512
            scores = self.scores(cases.histories[start:stop])
            scores[:, 0] = -np.inf
            for j, (target, history) in enumerate(
                zip(cases.targets[start:stop], cases.histories[start:stop], strict=True)
            ):
                t = self.vocab.index.get(target)
                if t is None:
                    continue
                row = scores[j]
                idx = [self.vocab.index[i] for i in set(history) if i in self.vocab.index
                       and i != target]
                row[idx] = -np.inf
                ranks[start + j] = float((row > row[t]).sum())
        return ranks

    def evaluate(self, cases: HoldoutCases) -> dict[str, float]:
        metrics = ranking_metrics(self.target_ranks(cases))
        metrics["n_cases"] = len(cases.targets)
        return metrics


@dataclass
class HoldoutCases:
    """Recent users' last items (targets) with the histories before them, in item ids."""

    histories: list[list[str]]
    targets: list[str]


def holdout_split(recent: Interactions, min_events: int = 3) -> tuple[Interactions, HoldoutCases]:
    """Hold out each recent user's last event: (training interactions, holdout cases)."""
    per_user = recent.sequences()
    users, items, ts = [], [], []
    histories, targets = [], []
    for user, seq in per_user.items():
        keep = seq[:-1] if len(seq) >= min_events else seq
        if len(seq) >= min_events:
            histories.append([i for i, _ in seq[:-1]])
            targets.append(seq[-1][0])
        for item, t in keep:
            users.append(user)
            items.append(item)
            ts.append(t)
    return Interactions(users, items, ts).time_ordered(), HoldoutCases(histories, targets)


@dataclass
class FineTuneConfig:
    epochs: int = 15
    patience: int = 3
    lr: float = 5e-4
    time_budget_s: float = 60.0
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
    from dataclasses import replace

    from training.train import TrainConfig, train_model

    split = LeaveOneOut.from_interactions(train, catalog=live.vocab.items)
    text_vectors = text_vectors_for(split.vocab.items) if live.model.config.use_text else None
    cfg = live.model.config
    train_config = replace(
        TrainConfig(), seed=config.seed, epochs=config.epochs, patience=config.patience,
        lr=config.lr, warmup_epochs=0, time_budget_s=config.time_budget_s, dim=cfg.dim,
        layers=cfg.layers, heads=cfg.heads, max_len=cfg.max_len, dropout=cfg.dropout,
        use_ids=cfg.use_ids, use_text=cfg.use_text and text_vectors is not None,
    )
    state = warm_state(live, split.vocab)
    result = train_model(split, text_vectors, train_config, progress=progress, init_state=state)
    return ScoredModel(result.model, split.vocab, label, result)


def warm_state(live: ScoredModel, vocab: Vocabulary) -> dict[str, Any]:
    """``live``'s weights re-indexed to ``vocab`` by item id (new items keep a fresh init;
    content buffers come from the new vocabulary's text, not from here)."""
    import torch

    state = {k: v.clone() for k, v in live.model.state_dict().items()
             if not k.startswith("items.content_")}
    key = "items.id_embedding.weight"
    if key in state:
        old = state[key]
        fresh = torch.randn(len(vocab), old.shape[1]) * old.shape[1] ** -0.5
        fresh[0] = 0.0
        trained = live.base_vocab  # rows added by a catalogue refresh have no ID embedding
        pairs = [(i, trained.index[item]) for i, item in enumerate(vocab.items, start=1)
                 if item in trained.index]
        if pairs:
            new_rows, old_rows = zip(*pairs, strict=True)
            fresh[list(new_rows)] = old[list(old_rows)]
        state[key] = fresh
    return state


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in metrics.items()}


# --- the Kafka wiring: ``streamrec trainer`` ----------------------------------------------------
CandidateFn = Any  # (live: ScoredModel, train: Interactions) -> ScoredModel


class TrainerService:
    """Consumes ``model-events``, retrains when the policy says so, publishes what passes.

    ``candidate_fn`` (default :func:`fine_tune`) is injectable so tests can offer a candidate
    that must be rejected.
    """

    def __init__(
        self,
        settings: Any,
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
        self.policy = policy or RetrainPolicy(schedule_every=None, cooldown=600.0)
        self.gate = gate or PromotionGate()
        self.watch = watch or PromotionWatch()
        self.recent_events = recent_events
        self.min_regime_events = min_regime_events
        self.finetune = finetune or FineTuneConfig()
        self.candidate_fn = candidate_fn
        self.texts = texts
        self.counters = {"requests": 0, "retrain": 0, "promote": 0, "reject": 0, "rollback": 0}
        self.decisions: list[dict[str, Any]] = []
        self._producer: Any = None

    # --- the model directory -------------------------------------------------------------
    @property
    def model_dir(self) -> Any:
        return self.settings.model_repository / self.settings.model_name

    def live_version(self) -> int | None:
        published = versions.list_versions(self.model_dir)
        pinned = versions.read_pin(self.settings.model_repository, self.settings.model_name)
        if pinned in published:
            return pinned
        return published[-1] if published else None

    def load_version(self, version: int) -> ScoredModel:
        """The live version's torch weights (its model card names the checkpoint)."""
        import json
        from pathlib import Path

        from training.train import load_checkpoint

        card = json.loads((self.model_dir / str(version) / "model_card.json").read_text())
        model, vocab, _ = load_checkpoint(Path(card["checkpoint"]))
        return ScoredModel(model, vocab, f"{self.settings.model_name}:{version}")

    # --- one retrain ---------------------------------------------------------------------
    def retrain(self, reason: str, recent: Interactions) -> dict[str, Any]:
        """Fine-tune from live on ``recent``, gate on its holdout, publish if it passes."""
        live_v = self.live_version()
        started = {"reason": reason, "live_version": live_v, "events": len(recent)}
        self.emit("retrain", **started)
        if live_v is None:
            return self.emit("reject", **started, gate={"reason": "no live version to start from"})
        live = self.load_version(live_v)
        train, cases = holdout_split(recent)
        if self.candidate_fn is not None:
            candidate = self.candidate_fn(live, train)
        else:
            candidate = fine_tune(live, train, self._text_vectors, self.finetune,
                                  label="candidate")
        decision = self.gate.decide(candidate.evaluate(cases), live.evaluate(cases))
        if not decision.promote:
            return self.emit("reject", **started, gate=decision.to_json())
        version = self.publish(candidate, live_v, decision)
        new_label = f"{self.settings.model_name}:{version}"
        self.watch.start(new=new_label, previous=live.label)
        return self.emit("promote", **started, version=version, model=new_label,
                         previous=live.label, gate=decision.to_json())

    def publish(self, candidate: ScoredModel, parent: int, decision: GateDecision) -> int:
        import time as _time

        from training.export import publish_version
        from training.train import save_checkpoint

        checkpoint = (self.settings.artifacts / "checkpoints" / "trainer"
                      / f"{self.settings.model_name}-from{parent}-{int(_time.time())}.pt")
        save_checkpoint(candidate.result, checkpoint, {"metrics": decision.candidate,
                                                       "gate": decision.to_json()})
        version = publish_version(checkpoint, self.settings.model_repository,
                                  self.settings.model_name, metrics=decision.candidate,
                                  parent_version=parent)
        if versions.read_pin(self.settings.model_repository, self.settings.model_name):
            versions.write_pin(self.settings.model_repository, self.settings.model_name,
                               version, "promoted by the trainer")
        return version

    def check_live(self) -> dict[str, Any] | None:
        """After a promotion: roll back when the new version clearly loses live."""
        previous, new = self.watch.previous, self.watch.new
        verdict = self.watch.decide()
        if verdict != "rollback" or previous is None or new is None:
            return None
        target = int(previous.rsplit(":", 1)[1])
        pinned = versions.pin(self.settings.model_repository, self.settings.model_name, target,
                              f"rollback: {new} lost to {previous} live")
        return self.emit("rollback", model=new, to=f"{self.settings.model_name}:{pinned}",
                         new_hit_rate=round(self.watch.rates(new), 4),
                         previous_hit_rate=round(self.watch.reference[1]
                                                 / max(1, self.watch.reference[0]), 4))

    def _text_vectors(self, items: list[str]) -> np.ndarray | None:
        if self.texts is None:
            return None
        from training.pipeline import Dataset, text_matrix

        dataset = Dataset("trainer", Interactions([], [], []), list(self.texts), self.texts)
        return text_matrix(dataset, items, self.settings)

    # --- events ----------------------------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        from streams.feedback import model_event

        event = model_event(kind, source="trainer", **fields)
        self.counters[kind] = self.counters.get(kind, 0) + 1
        self.decisions.append(event)
        import logging

        logging.getLogger(__name__).warning("model-events: %s", event)
        return event

    async def run(self, *, schedule_s: float | None = None, max_retrains: int | None = None,
                  idle_exit_s: float | None = None) -> None:
        """The service loop (``streamrec trainer``)."""
        import asyncio
        import json
        import time as _time

        from streams.kafka_io import ensure_topics, start_consumer, start_producer
        from training.data import read_clicks_from_kafka

        s = self.settings
        await ensure_topics(s, [s.model_events_topic, s.clicks_topic])
        self._producer = await start_producer(s)
        consumer = await start_consumer(s, s.model_events_topic,
                                        group=f"{s.app_id}-trainer", from_beginning=True)
        if schedule_s is not None:
            self.policy.schedule_every = schedule_s
        start = _time.monotonic()
        idle_since = _time.monotonic()
        published = 0
        try:
            while max_retrains is None or self.counters["retrain"] < max_retrains:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for messages in batches.values():
                    for msg in messages:
                        try:
                            event = json.loads(msg.value)
                        except (TypeError, ValueError):
                            continue
                        if event.get("source") == "trainer":
                            continue
                        idle_since = _time.monotonic()
                        if event.get("type") == "drift":
                            self.counters["requests"] += 1
                        self.policy.learn_one(event)
                        self.watch.learn_one(event)
                self.check_live()
                reason = self.policy.decide(_time.monotonic() - start)
                if reason is not None:
                    recent = await asyncio.to_thread(
                        read_clicks_from_kafka, s.require_kafka(), s.clicks_topic)
                    recent, _ = self.policy.training_events(
                        recent, self.recent_events, self.min_regime_events, reason,
                        self.gate.min_cases)
                    await asyncio.to_thread(self.retrain, reason, recent)
                for event in self.decisions[published:]:
                    await self._producer.send_and_wait(
                        s.model_events_topic, json.dumps(event).encode())
                published = len(self.decisions)
                if idle_exit_s is not None and _time.monotonic() - idle_since > idle_exit_s:
                    break
        finally:
            await consumer.stop()
            await self._producer.stop()
