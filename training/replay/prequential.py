"""The prequential replay: each variant replayed through the worker's own engine.

Each click is first a test of the list the user received after their previous click (hit@10,
NDCG@10), then it updates everything, exactly as in the worker. :class:`Replayer` runs one
variant (:data:`VARIANTS`) over one :class:`~training.replay.data.ReplayData` and returns its
:class:`VariantRun` (ranks by stream position, decision markers).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from streamrec.core.config import Settings, UserError
from streamrec.core.events import ClickEvent
from streamrec.core.metrics import hit_rate_at_k, ndcg_at_k
from streams.components import build_drift_detector
from streams.engine import (
    BlendRanker,
    Catalog,
    EngineConfig,
    ModelAnswer,
    RecommendationEngine,
)
from streams.feedback import AdaptiveFeedback, FeedbackOutcome, FeedbackTracker
from streams.rerank import OnlineReranker, RerankConfig
from streams.signals import InMemorySignals, Transition
from streams.state import UserState
from training.data import Interactions
from training.replay.adaptive_loop import AdaptiveLoop
from training.replay.data import ReplayData
from training.replay.frozen_model import ModelUnavailableError, train_frozen
from training.replay.rankers import BiasedMFRanker, CovisitRanker, Observers, PopularRanker

VARIANTS = ("popular", "covisit", "biased_mf", "frozen", "reranked", "adaptive")
MODEL_VARIANTS = ("frozen", "reranked", "adaptive")
K = 10


class LiveModelSource:
    """A :class:`~streams.engine.ModelSource` over an in-process model whose version can
    switch (the replay's stand-in for Triton + the worker's version pin)."""

    def __init__(self, model: Any) -> None:
        self.current = model

    async def recommend(self, sequences: list[list[str]], exclude: list[list[str]],
                        k: int) -> ModelAnswer:
        return ModelAnswer(self.current.recommend(sequences, exclude, k), self.current.label)


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
        feedback = AdaptiveFeedback(reranker, build_drift_detector(self.settings), k=K,
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


def ensure_variants(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(VARIANTS)}")
    return list(names)
