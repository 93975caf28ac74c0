"""The recommendation engine: one batch of valid clicks in, one recommendation per click out.

This is the code the Faust worker runs for every batch, and the code the prequential replay runs
without Kafka. It is wiring between small parts with their own tests:

- :class:`~streams.state.UserState` (per-user temporal state),
- a :class:`~streams.signals.StreamSignals` store (trending + co-visitation, shared),
- a :class:`Catalog` (titles, categories, deactivated items),
- an optional :class:`ModelSource` (the sequence model served by Triton),
- a :class:`Ranker` that orders the merged candidates (a fixed blend by default; the River
  re-ranker once feedback flows),
- an optional :class:`FeedbackObserver` told, before each state update, whether the click hit
  the user's last list.

When the model is missing, slow or down, the engine answers from the stream's own signals and
labels the list ``model: "fallback"``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamrec.core.events import CatalogItem, ClickEvent, Recommendation, RecommendedItem
from streamrec.core.ports import FALLBACK, ModelAnswer, ModelSource, ModelUnavailable
from streams.signals import SignalSnapshot, StreamSignals, Transition
from streams.state import StateConfig, UserState

log = logging.getLogger(__name__)

# a reason quotes at most this many characters of a title
MAX_TITLE_IN_REASON = 120

# --- the parts the engine is wired from ------------------------------------------------------
@dataclass(slots=True)
class Candidate:
    """One item that some source proposes for one user, with what each source said."""

    item_id: str
    model_score: float | None = None
    model_rank: int | None = None
    trending_score: float = 0.0
    trending_rank: int | None = None
    covisit_score: float = 0.0
    covisit_anchor: str | None = None

    @property
    def sources(self) -> list[str]:
        out = []
        if self.model_rank is not None:
            out.append("model")
        if self.covisit_anchor is not None:
            out.append("covisit")
        if self.trending_rank is not None:
            out.append("trending")
        return out


@dataclass(slots=True)
class RankingContext:
    """What a ranker may look at besides the candidates."""

    state: UserState
    event: ClickEvent
    catalog: Catalog
    now_ts: int
    model_answered: bool


class Ranker(Protocol):
    def rank(
        self, candidates: list[Candidate], context: RankingContext, k: int
    ) -> list[tuple[Candidate, float]]: ...


class FeedbackObserver(Protocol):
    def observe(self, state: UserState, event: ClickEvent) -> None:
        """Called with the state *before* the click is applied (its ``last_recommended``)."""
        ...


class BlendRanker:
    """A fixed, explainable blend: the model's order first, then co-visitation, then trending.

    Scores are comparable across sources: model candidates score in (2, 3], co-visited ones in
    (1, 2], trending ones in (0, 1].
    """

    def rank(
        self, candidates: list[Candidate], context: RankingContext, k: int
    ) -> list[tuple[Candidate, float]]:
        def score(c: Candidate) -> float:
            if c.model_rank is not None:
                return 2.0 + 1.0 / (1 + c.model_rank)
            if c.covisit_anchor is not None:
                return 1.0 + c.covisit_score / (1.0 + c.covisit_score)
            return c.trending_score / (1.0 + c.trending_score)

        scored = [(c, score(c)) for c in candidates]
        scored.sort(key=lambda cs: (-cs[1], cs[0].item_id))
        return scored[:k]


# --- the catalogue ---------------------------------------------------------------------------
class Catalog:
    """Item metadata the engine needs: titles for reasons, categories for interests, activity.

    This in-memory catalogue is complete by construction; the worker's Redis-backed subclass
    fills its cache from Redis in :meth:`ensure`.
    """

    def __init__(self, items: Iterable[CatalogItem] = ()) -> None:
        self.items: dict[str, CatalogItem] = {}
        self.inactive: set[str] = set()
        for item in items:
            self.update(item)

    def update(self, item: CatalogItem) -> None:
        self.items[item.item_id] = item
        if item.active:
            self.inactive.discard(item.item_id)
        else:
            self.inactive.add(item.item_id)

    async def ensure(self, item_ids: Iterable[str]) -> None:
        """Make sure metadata for these items is at hand (one round trip at most)."""
        return None

    def title(self, item_id: str) -> str:
        item = self.items.get(item_id)
        return item.title if item is not None and item.title else item_id

    def categories(self, item_id: str) -> tuple[str, ...]:
        item = self.items.get(item_id)
        return item.categories if item is not None else ()


# --- the engine ------------------------------------------------------------------------------
@dataclass(slots=True)
class EngineConfig:
    """``k``: items per recommendation; ``model_k``: candidates asked of the model per request
    (at most the live version's top-K, ``k`` in its model card; the model answers fewer when it
    has fewer)."""

    k: int = 10
    model_k: int = 50
    covisit_anchors: int = 3
    model_timeout_s: float = 0.08
    state: StateConfig = field(default_factory=StateConfig)


@dataclass(slots=True)
class _Pending:
    event: ClickEvent
    state: UserState
    sequence: list[str]
    duplicate: bool


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    duplicates: int = 0
    model_answers: int = 0
    fallbacks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "model_answers": self.model_answers,
            "fallbacks": self.fallbacks,
        }


class RecommendationEngine:
    """Turns a batch of valid clicks into recommendations, updating per-user state."""

    def __init__(
        self,
        signals: StreamSignals,
        catalog: Catalog,
        *,
        model: ModelSource | None = None,
        ranker: Ranker | None = None,
        feedback: FeedbackObserver | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.signals = signals
        self.catalog = catalog
        self.model = model
        self.ranker: Ranker = ranker or BlendRanker()
        self.feedback = feedback
        self.config = config or EngineConfig()
        self.stats = EngineStats()

    async def process_batch(
        self, events: Sequence[ClickEvent], states: dict[str, UserState]
    ) -> list[Recommendation]:
        """Apply ``events`` in order to ``states`` (mutated in place, created when missing) and
        return one recommendation per event, repeats included (their state is left alone)."""
        started = time.perf_counter()
        cfg = self.config
        await self.catalog.ensure({e.item_id for e in events})
        pending: list[_Pending] = []
        transitions: list[Transition] = []
        for event in events:
            state = states.get(event.user_id)
            if state is None:
                state = states[event.user_id] = UserState(event.user_id)
            if self.feedback is not None and not state.has_event(event.event_id):
                self.feedback.observe(state, event)
            fresh = state.update(event, self.catalog.categories(event.item_id), cfg.state)
            if fresh:
                previous = (
                    state.previous_item
                    if state.same_session_as_previous(cfg.state.session_gap_ms)
                    else None
                )
                transitions.append(Transition(event.item_id, event.ts, previous))
            pending.append(_Pending(event, state, state.recent_items(), not fresh))
        self.stats.events += len(events)
        self.stats.duplicates += sum(p.duplicate for p in pending)

        anchors = {i for p in pending for i in p.sequence[-cfg.covisit_anchors :]}
        now_ts = max((e.ts for e in events), default=0)
        snapshot, answer = await asyncio.gather(
            self.signals.observe_and_fetch(transitions, anchors, now_ts),
            self._ask_model(pending),
        )
        await self.catalog.ensure(anchors)
        recommendations = []
        for i, p in enumerate(pending):
            model_list = answer.lists[i] if answer is not None else None
            items = self._rank(p, snapshot, model_list, now_ts)
            label = answer.model if answer is not None else FALLBACK
            p.state.last_recommended = {
                "event_id": p.event.event_id,
                "model": label,
                "items": [it.item_id for it in items],
                "ts": p.event.ts,
            }
            recommendations.append(
                Recommendation(
                    user_id=p.event.user_id,
                    event_id=p.event.event_id,
                    items=items,
                    model=label,
                    generated_at=int(time.time() * 1000),
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            )
        return recommendations

    async def _ask_model(self, pending: list[_Pending]) -> ModelAnswer | None:
        if self.model is None or not pending:
            if pending:
                self.stats.fallbacks += len(pending)
            return None
        try:
            answer = await asyncio.wait_for(
                self.model.recommend(
                    [p.sequence for p in pending],
                    [self._excluded(p.state) for p in pending],
                    self.config.model_k,
                ),
                timeout=self.config.model_timeout_s,
            )
        except (ModelUnavailable, TimeoutError) as exc:
            log.debug("model unavailable, answering from the stream: %s", exc)
            self.stats.fallbacks += len(pending)
            return None
        self.stats.model_answers += len(pending)
        return answer

    def _excluded(self, state: UserState) -> list[str]:
        return state.seen + sorted(self.catalog.inactive)

    def _rank(
        self,
        p: _Pending,
        snapshot: SignalSnapshot,
        model_list: list[tuple[str, float]] | None,
        now_ts: int,
    ) -> list[RecommendedItem]:
        excluded = set(p.state.seen) | self.catalog.inactive
        candidates: dict[str, Candidate] = {}

        def candidate(item_id: str) -> Candidate | None:
            if item_id in excluded:
                return None
            c = candidates.get(item_id)
            if c is None:
                c = candidates[item_id] = Candidate(item_id)
            return c

        for rank, (item_id, score) in enumerate(model_list or []):
            c = candidate(item_id)
            if c is not None:
                c.model_score, c.model_rank = score, rank
        # the most recent anchor first, so its reason wins for items several anchors share
        for anchor in reversed(p.sequence[-self.config.covisit_anchors :]):
            for item_id, count in snapshot.covisited.get(anchor, []):
                c = candidate(item_id)
                if c is not None and c.covisit_anchor is None:
                    c.covisit_score, c.covisit_anchor = count, anchor
        for rank, (item_id, count) in enumerate(snapshot.trending):
            c = candidate(item_id)
            if c is not None:
                c.trending_score, c.trending_rank = count, rank
        context = RankingContext(
            state=p.state,
            event=p.event,
            catalog=self.catalog,
            now_ts=now_ts,
            model_answered=model_list is not None,
        )
        ranked = self.ranker.rank(list(candidates.values()), context, self.config.k)
        return [RecommendedItem(c.item_id, s, self.reason(c, p.sequence)) for c, s in ranked]

    def reason(self, c: Candidate, sequence: list[str]) -> str:
        if c.model_rank is not None:
            last = sequence[-1] if sequence else None
            return f"sequence model, after {self._short_title(last)}" if last else "model"
        if c.covisit_anchor is not None:
            return f"often watched after {self._short_title(c.covisit_anchor)}"
        return "trending"

    def _short_title(self, item_id: str) -> str:
        """The item's title, cut for a reason: a catalogue of 60 KB titles must not make
        a recommendation too big to send."""
        title = self.catalog.title(item_id)
        if len(title) <= MAX_TITLE_IN_REASON:
            return title
        return title[: MAX_TITLE_IN_REASON - 3] + "..."
