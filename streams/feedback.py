"""Live test-then-learn feedback: did the user's click hit the list we sent them before?

Every click is first a *test* of the last list sent to that user (``UserState.last_recommended``:
hit or miss, and the rank), then a lesson: the re-ranker learns from it and the drift detector
watches the hit stream. This is the prequential signal of the live system, counted per model
version (the list's ``model`` label).

- :class:`FeedbackTracker`: a :class:`~streams.engine.FeedbackObserver` that turns a click into
  a :class:`FeedbackOutcome` and counts hits per model version (overall and over a window).
- :class:`AdaptiveFeedback`: the tracker plus the adaptation: the re-ranker learns from each
  outcome, :class:`~streams.drift.HitRateDriftDetector` watches hits; on a drift the re-ranker
  speeds up at once and a ``drift`` event (a retrain request) is queued for ``model-events``.
  The worker drains :meth:`AdaptiveFeedback.drain_events` after each batch and publishes them.

Pure objects: no Kafka, no clock (event time only).

>>> from streamrec.core.events import ClickEvent
>>> from streams.state import UserState
>>> tracker = FeedbackTracker(k=10)
>>> state = UserState("u1")
>>> state.last_recommended = {"event_id": "e1", "model": "sasrec:1", "items": ["a", "b", "c"]}
>>> tracker.observe(state, ClickEvent("e2", "u1", "b", "click", 5)).rank
1.0
>>> tracker.counters["sasrec:1"].hit_rate
1.0
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamrec.core.metrics import rank_in_list
from streams.drift import HitRateDriftDetector

if TYPE_CHECKING:
    from streamrec.core.events import ClickEvent
    from streams.rerank.reranker import OnlineReranker
    from streams.state import UserState

# event types on the ``model-events`` topic
DRIFT, RETRAIN, PROMOTE, REJECT, ROLLBACK, HIT_RATE = (
    "drift", "retrain", "promote", "reject", "rollback", "hit_rate"
)


def model_event(kind: str, **fields: Any) -> dict[str, Any]:
    """One ``model-events`` record: ``{"type": kind, "at": wall-clock ms, **fields}``.

    >>> sorted(model_event("drift", model="sasrec:2"))
    ['at', 'model', 'type']
    """
    return {"type": kind, "at": int(time.time() * 1000), **fields}


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    """How one click scored against the list sent before it (``rank`` is ``inf`` if absent)."""

    user_id: str
    event_id: str
    list_event_id: str
    model: str
    item_id: str
    rank: float
    k: int
    ts: int

    @property
    def hit(self) -> bool:
        return self.rank < self.k

    @property
    def ndcg(self) -> float:
        return 1.0 / math.log2(self.rank + 2.0) if self.hit else 0.0


@dataclass
class HitCounter:
    """Hits of one model version: overall, and over the last ``window`` outcomes."""

    window: int = 1_000
    n: int = 0
    hits: int = 0
    ndcg_sum: float = 0.0
    recent: deque[bool] = field(default_factory=deque)
    recent_hits: int = 0

    def update(self, outcome: FeedbackOutcome) -> HitCounter:
        self.n += 1
        self.hits += outcome.hit
        self.ndcg_sum += outcome.ndcg
        self.recent.append(outcome.hit)
        self.recent_hits += outcome.hit
        if len(self.recent) > self.window:
            self.recent_hits -= self.recent.popleft()
        return self

    @property
    def hit_rate(self) -> float:
        return self.hits / self.n if self.n else 0.0

    @property
    def recent_hit_rate(self) -> float:
        return self.recent_hits / len(self.recent) if self.recent else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "hits": self.hits, "hit_rate": round(self.hit_rate, 4),
                "ndcg": round(self.ndcg_sum / self.n, 4) if self.n else 0.0,
                "recent_hit_rate": round(self.recent_hit_rate, 4)}


class FeedbackTracker:
    """Scores each click against the user's last list; counts hits per model version."""

    def __init__(
        self,
        k: int = 10,
        window: int = 1_000,
        listeners: list[Callable[[FeedbackOutcome], Any]] | None = None,
    ) -> None:
        self.k = k
        self.window = window
        self.counters: dict[str, HitCounter] = {}
        self.last: FeedbackOutcome | None = None
        # called with every outcome (the replay records them; the worker may export metrics)
        self.listeners = list(listeners or [])

    def observe(self, state: UserState, event: ClickEvent) -> FeedbackOutcome | None:
        """The outcome of ``event`` against ``state.last_recommended`` (None: no list yet)."""
        last = state.last_recommended
        if not last:  # no list sent yet (an empty list is a miss)
            self.last = None
            return None
        outcome = FeedbackOutcome(
            user_id=event.user_id,
            event_id=event.event_id,
            list_event_id=str(last.get("event_id", "")),
            model=str(last.get("model", "unknown")),
            item_id=event.item_id,
            rank=rank_in_list(last.get("items") or [], event.item_id),
            k=self.k,
            ts=event.ts,
        )
        counter = self.counters.get(outcome.model)
        if counter is None:
            counter = self.counters[outcome.model] = HitCounter(self.window)
        counter.update(outcome)
        self.last = outcome
        for listener in self.listeners:
            listener(outcome)
        return outcome

    def stats(self) -> dict[str, Any]:
        return {model: c.as_dict() for model, c in sorted(self.counters.items())}


class AdaptiveFeedback(FeedbackTracker):
    """Feedback that adapts: the re-ranker learns, drift detection speeds it up and asks for
    a retrain (a ``drift`` event for ``model-events``).

    ``report_every`` outcomes, a ``hit_rate`` event summarises the hit counts per version
    since the last report (the trainer's post-promotion check sums them over workers).
    """

    def __init__(
        self,
        reranker: OnlineReranker | None = None,
        detector: HitRateDriftDetector | None = None,
        *,
        k: int = 10,
        window: int = 1_000,
        report_every: int = 1_000,
        worker: str = "",
        listeners: list[Callable[[FeedbackOutcome], Any]] | None = None,
    ) -> None:
        super().__init__(k, window, listeners)
        self.reranker = reranker
        self.detector = detector  # None: no drift detection (the re-ranker still learns)
        self.report_every = report_every
        self.worker = worker
        self.events: list[dict[str, Any]] = []
        self.drifts = 0
        self.live_model: str | None = None
        self._followed: set[str] = set()  # versions whose outcomes the detector has followed
        self._period: dict[str, list[int]] = {}
        self._since_report = 0

    def observe(self, state: UserState, event: ClickEvent) -> FeedbackOutcome | None:
        outcome = super().observe(state, event)
        if outcome is None:
            return None
        if self.reranker is not None:
            self.reranker.learn_feedback(outcome.user_id, outcome.list_event_id, outcome.item_id)
        self._follow_version(outcome.model)
        if self.detector is not None and self.detector.update(outcome.hit).drift_detected:
            self._on_drift(outcome)
        self._count_for_report(outcome)
        return outcome

    def _follow_version(self, model: str) -> None:
        """A new model version's hit rate is its own: restart the drift reference at its first
        outcome. Lists an earlier version sent keep being scored for a while after a switch;
        their outcomes restart nothing (else the detector would restart at every one)."""
        if model == "fallback" or model in self._followed:
            return
        self._followed.add(model)
        if self.live_model is not None and self.detector is not None:
            self.detector.reset()
        self.live_model = model

    def _on_drift(self, outcome: FeedbackOutcome) -> None:
        self.drifts += 1
        if self.reranker is not None:
            self.reranker.speed_up()
        assert self.detector is not None
        detection = self.detector.detections[-1]
        self.events.append(model_event(
            DRIFT, request="retrain", model=self.live_model or outcome.model,
            ts=outcome.ts, worker=self.worker, response="reranker_speed_up",
            **detection.to_json(),
        ))

    def _count_for_report(self, outcome: FeedbackOutcome) -> None:
        n_hits = self._period.setdefault(outcome.model, [0, 0])
        n_hits[0] += 1
        n_hits[1] += outcome.hit
        self._since_report += 1
        if self._since_report >= self.report_every:
            self.events.append(self.report(outcome.ts))

    def report(self, ts: int) -> dict[str, Any]:
        """A ``hit_rate`` event with the counts per version since the last report."""
        event = model_event(
            HIT_RATE, ts=ts, worker=self.worker,
            versions={m: {"n": n, "hits": h} for m, (n, h) in sorted(self._period.items())},
        )
        self._period = {}
        self._since_report = 0
        return event

    def drain_events(self) -> list[dict[str, Any]]:
        """The queued ``model-events`` records (cleared)."""
        out, self.events = self.events, []
        return out

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"versions": super().stats(), "drifts": self.drifts}
        if self.detector is not None:
            out["hit_rate_estimate"] = round(self.detector.hit_rate, 4)
        return out
