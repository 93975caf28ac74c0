"""Prequential (test-then-learn) replay through the worker's own code.

Events are replayed in time order through :class:`~streams.engine.RecommendationEngine` with
the worker's parts: per-user :class:`~streams.state.UserState`, in-memory trending and
co-visitation (:class:`~streams.signals.InMemorySignals`), the feedback tracker, the River
re-ranker and drift detector, and the metric functions of :mod:`streamrec.core.metrics`. Each click
is first a test of the list the user received after their previous click (hit@10, NDCG@10),
then it updates everything, exactly as in the worker.

Protocol: the first part of the data (``warm``; MovieLens: the first half of the events; the
synthetic stream: the events before ``--warm``) trains the frozen model and warms user states
and stream signals without being scored; the rest is replayed and scored.

Variants (:data:`VARIANTS`):

- ``popular``: most clicked items in the recent event-time window (trending);
- ``covisit``: items co-visited after the user's last items, topped up by trending;
- ``biased_mf``: River's ``reco.BiasedMF`` learning online from clicks (implicit: 1 for the
  click, 0 for ``mf_negatives`` random items), ranking the whole catalogue;
- ``frozen``: the sequence model trained on the warm part, never updated (new items are not in
  its vocabulary), blended with co-visitation and trending by the fixed blend;
- ``reranked``: the frozen model + the online River re-ranker (learns from feedback);
- ``adaptive``: the full loop: re-ranker, drift detection (speed-up on drift), retraining on
  drift and on a schedule from the live version on recent events, promotion only through the
  gate on a recent holdout. A candidate goes live ``retrain_lag`` events after the retrain
  started (the time a trainer would need), not at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from streamrec.core.config import Settings, UserError
from streamrec.core.events import CatalogItem, ClickEvent
from streamrec.core.metrics import hit_rate_at_k, ndcg_at_k
from streams.drift import HitRateDriftDetector
from streams.engine import (
    BlendRanker,
    Candidate,
    Catalog,
    EngineConfig,
    ModelAnswer,
    RankingContext,
    RecommendationEngine,
)
from streams.feedback import DRIFT, AdaptiveFeedback, FeedbackOutcome, FeedbackTracker
from streams.rerank import OnlineReranker, RerankConfig
from streams.signals import InMemorySignals, Transition
from streams.state import StateConfig, UserState
from training.data import Interactions

VARIANTS = ("popular", "covisit", "biased_mf", "frozen", "reranked", "adaptive")
MODEL_VARIANTS = ("frozen", "reranked", "adaptive")
K = 10


# --- data --------------------------------------------------------------------------------------
@dataclass
class ReplayData:
    """What a replay needs: warm-up events, the scored stream, the catalogue, time scales."""

    name: str
    warm: list[ClickEvent]
    stream: list[ClickEvent]
    catalog: list[CatalogItem]
    texts: dict[str, str] | None
    drift_at: int | None = None  # index in ``stream`` of the injected drift
    trending_window_ms: int = 24 * 3600 * 1000
    trending_hop_ms: int = 3600 * 1000
    state: StateConfig = field(default_factory=StateConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)

    def interactions(self, events: Sequence[ClickEvent]) -> Interactions:
        return Interactions([e.user_id for e in events], [e.item_id for e in events],
                            [e.ts for e in events])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for e in self.warm:
            h.update(f"{e.user_id}\t{e.item_id}\t{e.ts}\n".encode())
        return h.hexdigest()[:12]


def movielens_data() -> ReplayData:
    """MovieLens-100K: the first half of the events warms up, the second half is replayed."""
    from training.data import movielens_catalog, movielens_interactions

    data = movielens_interactions()
    events = [ClickEvent(f"ml-{i}", u, it, "rating", t)
              for i, (u, it, t) in enumerate(zip(data.users, data.items, data.ts, strict=True))]
    half = len(events) // 2
    texts = movielens_catalog()
    catalog = [CatalogItem(c.item_id, title=c.title, text=c.text,
                           categories=tuple(c.categories)) for c in texts]
    day = 24 * 3600 * 1000
    return ReplayData(
        "ml-100k", events[:half], events[half:], catalog, {c.item_id: c.text for c in texts},
        trending_window_ms=7 * day, trending_hop_ms=day,
        state=StateConfig(session_gap_ms=day, interest_half_life_ms=30 * day),
        rerank=RerankConfig(recency_half_life_ms=7 * day, age_half_life_ms=30 * day,
                            interest_half_life_ms=30 * day),
    )


def synthetic_data(events: int = 40_000, warm: int = 15_000, drift_at: int = 25_000,
                   seed: int = 0, n_users: int = 2_000, n_items: int = 1_000) -> ReplayData:
    """The abrupt-drift stream: ``warm`` events warm up, the drift comes at ``drift_at``."""
    from training.synthetic import abrupt_drift_stream

    stream = abrupt_drift_stream(events=events, drift_at=drift_at, seed=seed,
                                 n_users=n_users, n_items=n_items)
    all_events = list(stream.events())
    texts = stream.catalog_texts()
    step = stream.config.step_ms
    return ReplayData(
        "synthetic", all_events[:warm], all_events[warm:], stream.catalog(),
        {t.item_id: t.text for t in texts}, drift_at=drift_at - warm,
        # time scales in events: trending over ~1,000 events, interest over ~2,000
        trending_window_ms=1_000 * step, trending_hop_ms=100 * step,
        state=StateConfig(session_gap_ms=3_000 * step, interest_half_life_ms=2_000 * step),
        rerank=RerankConfig(recency_half_life_ms=500 * step, age_half_life_ms=5_000 * step,
                            interest_half_life_ms=2_000 * step),
    )


# --- rankers of the stream baselines -----------------------------------------------------------
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


# --- the model as the engine sees it ---------------------------------------------------------
class LiveModelSource:
    """A :class:`~streams.engine.ModelSource` over an in-process model whose version can
    switch (the replay's stand-in for Triton + the worker's version pin)."""

    def __init__(self, model: Any) -> None:
        self.current = model

    async def recommend(self, sequences: list[list[str]], exclude: list[list[str]],
                        k: int) -> ModelAnswer:
        return ModelAnswer(self.current.recommend(sequences, exclude, k), self.current.label)


# --- the result of one variant -----------------------------------------------------------------
@dataclass
class VariantRun:
    name: str
    positions: list[int] = field(default_factory=list)  # stream index of each scored click
    ranks: list[float] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)  # drift / promote / reject
    counters: dict[str, int] = field(default_factory=dict)  # e.g. catalogue refreshes
    seconds: float = 0.0
    unavailable: str | None = None

    def record(self, index: int, outcome: FeedbackOutcome) -> None:
        self.positions.append(index)
        self.ranks.append(outcome.rank)

    def metrics(self, start: int = 0, stop: int | None = None) -> dict[str, float]:
        pos = np.asarray(self.positions)
        ranks = np.asarray(self.ranks, dtype=np.float64)
        mask = (pos >= start) & (pos < (stop if stop is not None else np.inf))
        return {"hr@10": hit_rate_at_k(ranks[mask], K), "ndcg@10": ndcg_at_k(ranks[mask], K),
                "n": int(mask.sum())}

    def windows(self, size: int, total: int) -> list[dict[str, float]]:
        return [{"start": s, **self.metrics(s, s + size)} for s in range(0, total, size)]

    def trailing_hr(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(stream index, HR@10 over the ``window`` scored clicks ending there)."""
        hits = (np.asarray(self.ranks) < K).astype(np.float64)
        if len(hits) < window:
            return np.zeros(0), np.zeros(0)
        csum = np.concatenate([[0.0], np.cumsum(hits)])
        rate = (csum[window:] - csum[:-window]) / window
        return np.asarray(self.positions[window - 1 :]), rate


# --- the replay ------------------------------------------------------------------------------
@dataclass
class ReplayOptions:
    batch_size: int = 1
    train_budget_s: float = 240.0
    seed: int = 0
    retrain_every: int = 10_000  # scheduled retrain every N replayed events (adaptive)
    retrain_lag: int = 500  # events between a retrain's start and its version going live
    recent_events: int = 20_000  # events a fine-tune trains on
    # after a drift a fine-tune trains on the events since it, at least this many
    min_regime_events: int = 2_000
    finetune_budget_s: float = 60.0
    followups: int = 4  # retrains after a drift, ``followup_every`` events apart
    followup_every: int = 1_000
    # adaptive: items first seen in the stream join the live version as text-only rows every
    # N events (the serving's catalogue refresh; 0 turns it off)
    catalog_refresh_every: int = 100
    progress: bool = True


class Replayer:
    """Runs variants over one :class:`ReplayData`."""

    def __init__(self, data: ReplayData, options: ReplayOptions,
                 settings: Settings | None = None) -> None:
        self.data = data
        self.options = options
        self.settings = settings or Settings.from_env()
        self.catalog = Catalog(data.catalog)
        self.index = {e.event_id: i for i, e in enumerate(data.stream)}
        self._frozen: Any = None

    # --- shared plumbing -------------------------------------------------------------------
    def engine(self, *, model: Any = None, ranker: Any = None,
               feedback: Any = None) -> RecommendationEngine:
        d = self.data
        signals = InMemorySignals(d.trending_window_ms, d.trending_hop_ms, top_n=50)
        return RecommendationEngine(signals, self.catalog, model=model, ranker=ranker,
                                    feedback=feedback,
                                    config=EngineConfig(k=K, model_k=50, state=d.state,
                                                        model_timeout_s=30.0))

    def warm_up(self, engine: RecommendationEngine, states: dict[str, UserState],
                learners: Sequence[Callable[[ClickEvent], Any]] = ()) -> None:
        """Apply the warm events to states and signals (nothing is scored)."""
        cfg = self.data.state
        signals = engine.signals
        assert isinstance(signals, InMemorySignals)
        for e in self.data.warm:
            state = states.get(e.user_id)
            if state is None:
                state = states[e.user_id] = UserState(e.user_id)
            if state.update(e, self.catalog.categories(e.item_id), cfg):
                prev = state.previous_item if state.same_session_as_previous(
                    cfg.session_gap_ms) else None
                signals.observe([Transition(e.item_id, e.ts, prev)])
            for learn in learners:
                learn(e)

    async def _run(self, run: VariantRun, engine: RecommendationEngine,
                   states: dict[str, UserState],
                   after_batch: Callable[[int], Any] | None = None) -> None:
        stream = self.data.stream
        size = self.options.batch_size
        bar = tqdm(total=len(stream), desc=f"replay {self.data.name} {run.name}",
                   file=sys.stderr, disable=not self.options.progress, leave=False,
                   mininterval=1.0)
        for start in range(0, len(stream), size):
            batch = stream[start : start + size]
            await engine.process_batch(batch, states)
            if after_batch is not None:
                after_batch(start + len(batch))
            bar.update(len(batch))
        bar.close()

    def tracker(self, run: VariantRun) -> FeedbackTracker:
        return FeedbackTracker(k=K, listeners=[self._recorder(run)])

    def _recorder(self, run: VariantRun) -> Callable[[FeedbackOutcome], None]:
        return lambda outcome: run.record(self.index[outcome.event_id], outcome)

    # --- variants --------------------------------------------------------------------------
    def run(self, name: str) -> VariantRun:
        started = time.monotonic()
        run = VariantRun(name)
        try:
            asyncio.run(getattr(self, f"_variant_{name}")(run))
        except ModelUnavailableError as exc:
            run.unavailable = str(exc)
        run.seconds = time.monotonic() - started
        return run

    async def _variant_popular(self, run: VariantRun) -> None:
        await self._stream_only(run, PopularRanker())

    async def _variant_covisit(self, run: VariantRun) -> None:
        await self._stream_only(run, CovisitRanker())

    async def _stream_only(self, run: VariantRun, ranker: Any) -> None:
        engine = self.engine(ranker=ranker, feedback=self.tracker(run))
        states: dict[str, UserState] = {}
        self.warm_up(engine, states)
        await self._run(run, engine, states)

    async def _variant_biased_mf(self, run: VariantRun) -> None:
        mf = BiasedMFRanker([c.item_id for c in self.data.catalog], seed=self.options.seed)
        engine = self.engine(ranker=mf, feedback=Observers(self.tracker(run), mf))
        states: dict[str, UserState] = {}
        self.warm_up(engine, states, [lambda e: mf.learn_click(e.user_id, e.item_id)])
        await self._run(run, engine, states)

    async def _variant_frozen(self, run: VariantRun) -> None:
        source = LiveModelSource(self.frozen_model())
        engine = self.engine(model=source, ranker=BlendRanker(), feedback=self.tracker(run))
        states: dict[str, UserState] = {}
        self.warm_up(engine, states)
        await self._run(run, engine, states)

    def _reranker(self) -> OnlineReranker:
        reranker = OnlineReranker(RerankConfig(**asdict(self.data.rerank)))
        return reranker

    async def _variant_reranked(self, run: VariantRun) -> None:
        source = LiveModelSource(self.frozen_model())
        reranker = self._reranker()
        feedback = AdaptiveFeedback(reranker, None, k=K, listeners=[self._recorder(run)])
        engine = self.engine(model=source, ranker=reranker, feedback=feedback)
        states: dict[str, UserState] = {}
        self.warm_up(engine, states, [lambda e: reranker.clock.learn_one(e.item_id, e.ts)])
        await self._run(run, engine, states)

    async def _variant_adaptive(self, run: VariantRun) -> None:
        source = LiveModelSource(self.frozen_model())
        reranker = self._reranker()
        feedback = AdaptiveFeedback(reranker, HitRateDriftDetector(), k=K,
                                    listeners=[self._recorder(run)])
        engine = self.engine(model=source, ranker=reranker, feedback=feedback)
        states: dict[str, UserState] = {}
        self.warm_up(engine, states, [lambda e: reranker.clock.learn_one(e.item_id, e.ts)])
        loop = AdaptiveLoop(self, source, feedback, run)
        await self._run(run, engine, states, loop.after_batch)

    # --- the frozen model ------------------------------------------------------------------
    def frozen_model(self) -> Any:
        if self._frozen is None:
            try:
                import torch

                # one intra-op thread: batch-1 scoring gains nothing from more, and on a busy
                # 2-core machine OpenMP's spinning threads slow it down many times over
                torch.set_num_threads(1)
            except ImportError:
                pass
            self._frozen = train_frozen(self.data, self.settings, self.options)
        return self._frozen

    def text_vectors_for(self, items: list[str]) -> np.ndarray | None:
        if self.data.texts is None:
            return None
        from training.pipeline import Dataset, text_matrix

        dataset = Dataset(self.data.name, Interactions([], [], []),
                          [c.item_id for c in self.data.catalog], self.data.texts)
        return text_matrix(dataset, items, self.settings)


class AdaptiveLoop:
    """The retraining loop inside the replay: the trainer's decisions, on the replay's clock.

    After each batch it drains the feedback's ``model-events`` (drift alarms), asks the
    :class:`~training.retrain.RetrainPolicy` (drift or schedule), fine-tunes the live version
    on the most recent ``recent_events`` events (each recent user's last event held out),
    gates the candidate against live on that holdout, and switches the model source
    ``retrain_lag`` events later if it passed. Every decision is a marker on the run.

    New items: as the worker's catalogue refresh does in production (an item on the ``items``
    topic is embedded and published as version N+1 within seconds), every
    ``catalog_refresh_every`` events the items the stream has shown that the live version does
    not know join it as text-only rows (:meth:`~training.retrain.ScoredModel.with_new_items`).
    The replay's catalogue lists every item from the start, so an item's first click stands for
    its arrival.
    """

    def __init__(self, replayer: Replayer, source: LiveModelSource,
                 feedback: AdaptiveFeedback, run: VariantRun) -> None:
        from training.retrain import PromotionGate, RetrainPolicy

        self.replayer = replayer
        self.source = source
        self.feedback = feedback
        self.run = run
        opts = replayer.options
        self.policy = RetrainPolicy(schedule_every=opts.retrain_every,
                                    cooldown=opts.retrain_lag,
                                    followups=opts.followups, followup_every=opts.followup_every)
        self.gate = PromotionGate(metric="ndcg@10", min_gain=0.0, min_cases=50)
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
                self.policy.learn_one(event)
        if self.pending is not None and done >= self.pending[0]:
            self.source.current = self.pending[1]
            self.run.markers.append({"type": "live", "index": done,
                                     "model": self.pending[1].label})
            self.pending = None
            if every:
                self.refresh_catalog(done)
        if self.pending is None:
            reason = self.policy.decide(done)
            if reason is not None:
                self.retrain(done, reason)

    def refresh_catalog(self, done: int) -> None:
        self.refreshed = done
        current, texts = self.source.current, self.replayer.data.texts
        if texts is None or not current.model.config.use_text:
            return
        missing = sorted(i for i in self.arrived if i not in current.vocab.index and i in texts)
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
        from training.retrain import FineTuneConfig, fine_tune, holdout_split

        r, opts = self.replayer, self.replayer.options
        seen = [*r.data.warm, *r.data.stream[:done]][-max(opts.recent_events,
                                                         opts.min_regime_events):]
        events, window = self.policy.training_events(
            r.data.interactions(seen), opts.recent_events, opts.min_regime_events, reason,
            self.gate.min_cases)
        train, cases = holdout_split(events)
        self.version += 1
        started = time.monotonic()
        candidate = fine_tune(
            self.source.current, train, r.text_vectors_for,
            FineTuneConfig(time_budget_s=opts.finetune_budget_s, seed=opts.seed + self.version),
            label=f"sasrec:r{self.version}",
        )
        decision = self.gate.decide(candidate.evaluate(cases), self.source.current.evaluate(cases))
        kind = "promote" if decision.promote else "reject"
        self.run.markers.append({"type": kind, "index": done, "reason": reason,
                                 "seconds": round(time.monotonic() - started, 1),
                                 "candidate": candidate.label, "window": window,
                                 **decision.to_json()})
        if decision.promote:
            self.pending = (done + opts.retrain_lag, candidate)


class ModelUnavailableError(Exception):
    """The sequence model cannot be trained or loaded here (e.g. torch is not installed)."""


def train_frozen(data: ReplayData, settings: Settings, options: ReplayOptions) -> Any:
    """The sequence model trained on the warm events only (cached under artifacts/replay)."""
    try:
        import torch  # noqa: F401

        from training.data import LeaveOneOut
        from training.retrain import ScoredModel
        from training.train import TrainConfig, load_checkpoint, save_checkpoint, train_model
    except ImportError as exc:
        raise ModelUnavailableError(f"the model needs the train extra ({exc})") from exc
    config = TrainConfig(seed=options.seed, time_budget_s=options.train_budget_s)
    key = hashlib.sha256(json.dumps(
        [data.fingerprint(), asdict(config), data.texts is not None]).encode()).hexdigest()[:12]
    path = settings.artifacts / "replay" / f"{data.name}-frozen-{key}.pt"
    if path.exists():
        model, vocab, _ = load_checkpoint(path)
        return ScoredModel(model, vocab, "sasrec:frozen")
    warm = data.interactions(data.warm)
    split = LeaveOneOut.from_interactions(warm)
    replayer_texts = None
    if data.texts is not None:
        from training.pipeline import Dataset, text_matrix

        dataset = Dataset(data.name, warm, sorted(data.texts), data.texts)
        replayer_texts = text_matrix(dataset, split.vocab.items, settings)
    config.use_text = replayer_texts is not None
    result = train_model(split, replayer_texts, config, progress=options.progress)
    save_checkpoint(result, path, {"replay": data.name})
    print(f"frozen model: {result.epochs_run} epochs in {result.seconds:.0f} s, valid "
          f"ndcg@10 {result.valid['ndcg@10']:.4f} -> {path}", file=sys.stderr)
    return ScoredModel(result.model, split.vocab, "sasrec:frozen")


def ensure_variants(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(VARIANTS)}")
    return list(names)
