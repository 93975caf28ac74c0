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
from typing import TYPE_CHECKING, Any

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
from training.replay.adaptive_loop import AdaptiveLoop
from training.replay.data import ReplayData
from training.replay.frozen_model import ModelUnavailableError, train_frozen
from training.replay.rankers import BiasedMFRanker, CovisitRanker, Observers, PopularRanker

if TYPE_CHECKING:
    from training.text_encoder import ItemTextVectors

VARIANTS = ("popular", "covisit", "biased_mf", "frozen", "reranked", "adaptive")
# what `streamrec replay` runs unless --variants says otherwise: not BiasedMF (a weak baseline,
# HR@10 0.06 synthetic / 0.10 MovieLens, no target depends on it; the slowest stream pass)
DEFAULT_VARIANTS = ("popular", "covisit", "frozen", "reranked", "adaptive")
# the frozen model's training on the synthetic stream (a small, sharply sequential world):
# converged in 12 epochs at lr 1e-2 (valid NDCG@10 0.52, seed 0), where 31 epochs at
# TrainConfig's 3e-3 reached 0.48
SYNTHETIC_TRAINING = {"train_epochs": 12, "train_patience": 3, "train_lr": 1e-2}
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
    train: dict[str, Any] = field(default_factory=dict)  # the frozen model's training
    seconds: float = 0.0
    unavailable: str | None = None

    def record(self, index: int, outcome: FeedbackOutcome) -> None:
        self.positions.append(index)
        self.ranks.append(outcome.rank)

    def metrics(self, start: int = 0, stop: int | None = None,
                mask: np.ndarray | None = None) -> dict[str, float]:
        """HR@10 and NDCG@10 of the scored clicks at stream positions ``[start, stop)``, only
        those where ``mask`` (by stream position, e.g. the hittable clicks) is true."""
        pos = np.asarray(self.positions, dtype=np.int64)
        ranks = np.asarray(self.ranks, dtype=np.float64)
        keep = (pos >= start) & (pos < (stop if stop is not None else np.inf))
        if mask is not None and len(pos):
            keep &= mask[pos]
        return {"hr@10": hit_rate_at_k(ranks[keep], K), "ndcg@10": ndcg_at_k(ranks[keep], K),
                "n": int(keep.sum())}

    def windows(self, size: int, total: int) -> list[dict[str, float]]:
        return [{"start": s, **self.metrics(s, s + size)} for s in range(0, total, size)]

    def trailing_hr(self, window: int,
                    mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(stream index, HR@10 over the ``window`` scored clicks ending there), only the
        clicks where ``mask`` (by stream position) is true."""
        positions = np.asarray(self.positions, dtype=np.int64)
        hits = (np.asarray(self.ranks) < K).astype(np.float64)
        if mask is not None and len(positions):
            positions, hits = positions[mask[positions]], hits[mask[positions]]
        if len(hits) < window:
            return np.zeros(0), np.zeros(0)
        csum = np.concatenate([[0.0], np.cumsum(hits)])
        rate = (csum[window:] - csum[:-window]) / window
        return positions[window - 1 :], rate


@dataclass
class ReplayOptions:
    batch_size: int = 8
    seed: int = 0
    # the frozen model's training: epochs and early stopping decide, never the wall clock
    # (None: TrainConfig's default; the synthetic stream's defaults are SYNTHETIC_TRAINING)
    train_epochs: int | None = None
    train_patience: int | None = None
    train_lr: float | None = None
    retrain_every: int = 10_000  # scheduled retrain every N replayed events (adaptive)
    retrain_lag: int = 500  # events between a retrain's start and its version going live
    recent_events: int = 20_000  # events a fine-tune trains on
    # after a drift a fine-tune trains on the events since it, at least this many
    min_regime_events: int = 2_000
    finetune_epochs: int = 5
    finetune_patience: int = 2
    # retrains after a drift, ``followup_every`` events apart: each one goes live ``retrain_lag``
    # events later, when the next one starts, on the regime's events so far
    followups: int = 12
    followup_every: int = 500
    # adaptive: items first seen in the stream join the live version as text-only rows every
    # N events (the serving's catalogue refresh; 0 turns it off)
    catalog_refresh_every: int = 100
    progress: bool = True  # a progress bar per pass
    progress_lines: bool = False  # instead, a line per tenth of the stream (several processes)


class MemoModel:
    """A model whose answers are memoised per (sequence, exclusions): passes that replay the
    same stream with the same fixed model (``frozen``, ``reranked``) ask it the same questions,
    and only the first pass pays for the forward passes."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.label = model.label
        self.answers: dict[tuple[tuple[str, ...], tuple[str, ...], int],
                           list[tuple[str, float]]] = {}

    def recommend(self, sequences: list[list[str]], exclude: list[list[str]],
                  k: int) -> list[list[tuple[str, float]]]:
        keys = [(tuple(s), tuple(e), k) for s, e in zip(sequences, exclude, strict=True)]
        missing = [i for i, key in enumerate(keys) if key not in self.answers]
        if missing:
            answers = self.model.recommend([sequences[i] for i in missing],
                                           [exclude[i] for i in missing], k)
            for i, answer in zip(missing, answers, strict=True):
                self.answers[keys[i]] = answer
        return [self.answers[key] for key in keys]


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
        self._frozen_info: dict[str, Any] = {}
        self._memo: MemoModel | None = None
        self._text_rows: ItemTextVectors | None = None  # item text, embedded once

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
        opts = self.options
        bar = tqdm(total=len(stream), desc=f"replay {self.data.name} {run.name}",
                   file=sys.stderr, disable=not opts.progress or opts.progress_lines,
                   leave=False, mininterval=1.0)
        tenth, started = max(1, len(stream) // 10), time.monotonic()
        for start in range(0, len(stream), size):
            batch = stream[start : start + size]
            await engine.process_batch(batch, states)
            if after_batch is not None:
                after_batch(start + len(batch))
            bar.update(len(batch))
            done = start + len(batch)
            if opts.progress_lines and done // tenth != start // tenth:
                print(f"  seed {opts.seed} {run.name}: {done:,}/{len(stream):,} events "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
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
        source = LiveModelSource(self.memo_model())
        run.train = dict(self._frozen_info)
        engine = self.engine(model=source, ranker=BlendRanker(), feedback=self.tracker(run))
        states: dict[str, UserState] = {}
        self.warm_up(engine, states)
        await self._run(run, engine, states)

    def _reranker(self) -> OnlineReranker:
        reranker = OnlineReranker(RerankConfig(**asdict(self.data.rerank)))
        return reranker

    async def _variant_reranked(self, run: VariantRun) -> None:
        source = LiveModelSource(self.memo_model())
        run.train = dict(self._frozen_info)
        reranker = self._reranker()
        feedback = AdaptiveFeedback(reranker, None, k=K, listeners=[self._recorder(run)])
        engine = self.engine(model=source, ranker=reranker, feedback=feedback)
        states: dict[str, UserState] = {}
        self.warm_up(engine, states, [lambda e: reranker.clock.learn_one(e.item_id, e.ts)])
        await self._run(run, engine, states)

    async def _variant_adaptive(self, run: VariantRun) -> None:
        source = LiveModelSource(self.frozen_model())
        run.train = dict(self._frozen_info)
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
            self._frozen, self._frozen_info = train_frozen(self.data, self.settings,
                                                           self.options)
        return self._frozen

    def memo_model(self) -> MemoModel:
        """The frozen model with its answers memoised (shared by this replayer's passes)."""
        if self._memo is None:
            self._memo = MemoModel(self.frozen_model())
        return self._memo

    def frozen_training(self) -> dict[str, Any]:
        """Train (or load) the frozen model; how its training went."""
        self.frozen_model()
        return dict(self._frozen_info)

    def text_vectors_for(self, items: list[str]) -> np.ndarray | None:
        """[len(items)+1, 384] text vectors in ``items``' order (row 0 = padding). Each item's
        text is embedded once per replayer (the whole catalogue at the first call): every
        retrain has a new vocabulary, and embedding it anew cost ML-100K fine-tunes half
        their time."""
        if self.data.texts is None:
            return None
        if self._text_rows is None:
            from training.text_encoder import ItemTextVectors

            self._text_rows = ItemTextVectors(self.data.texts,
                                              self.settings.triton.model_repository,
                                              self.settings.artifacts / "text-vectors")
            self._text_rows.embed([c.item_id for c in self.data.catalog])
        return self._text_rows.matrix(items)


def ensure_variants(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(VARIANTS)}")
    return list(names)
