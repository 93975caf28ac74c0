"""Feedback: hit or miss and rank per model version, learning, drift events."""

from __future__ import annotations

import asyncio
import random

from streamrec.core.events import ClickEvent
from streams.drift import HitRateDriftDetector
from streams.engine import Candidate, Catalog, RecommendationEngine
from streams.feedback import DRIFT, HIT_RATE, AdaptiveFeedback, FeedbackTracker
from streams.rerank.reranker import OnlineReranker
from streams.signals import InMemorySignals
from streams.state import UserState


def listed(items: list[str], model: str = "sasrec:1", event_id: str = "e0") -> UserState:
    state = UserState("u")
    state.last_recommended = {"event_id": event_id, "model": model, "items": items}
    return state


def test_hit_miss_rank_and_counts_per_version() -> None:
    t = FeedbackTracker(k=3)
    assert t.observe(UserState("u"), ClickEvent("e1", "u", "a", "click", 1)) is None
    hit = t.observe(listed(["a", "b", "c"]), ClickEvent("e1", "u", "c", "click", 1))
    assert hit is not None and hit.hit and hit.rank == 2.0
    miss = t.observe(listed(["a"], model="sasrec:2"), ClickEvent("e2", "u", "z", "click", 2))
    assert miss is not None and not miss.hit and miss.rank == float("inf")
    assert t.stats()["sasrec:1"]["hit_rate"] == 1.0
    assert t.stats()["sasrec:2"]["hit_rate"] == 0.0


def test_engine_calls_feedback_before_the_state_update() -> None:
    feedback = FeedbackTracker()
    engine = RecommendationEngine(InMemorySignals(3_600_000, 600_000), Catalog(),
                                  feedback=feedback)
    states: dict[str, UserState] = {}
    events = [ClickEvent(f"e{i}", f"u{i % 2}", f"i{i % 3}", "click", 1_000 + i)
              for i in range(30)]
    for e in events:
        asyncio.run(engine.process_batch([e], states))
    assert sum(c.n for c in feedback.counters.values()) == 28  # every click after the first


def test_reranker_learns_and_drift_emits_a_retrain_request() -> None:
    reranker = OnlineReranker()
    feedback = AdaptiveFeedback(reranker, HitRateDriftDetector(warmup=100), report_every=500,
                                worker="w1")
    rng = random.Random(0)
    drift_at = None
    for i in range(4_000):
        state = listed(["a", "b"], event_id=f"e{i}")
        # the reranker logged this list
        from streams.engine import RankingContext

        ctx = RankingContext(state, ClickEvent(f"e{i}", "u", "a", "click", i), Catalog(), i, True)
        reranker.rank([Candidate("a", model_score=1.0, model_rank=0),
                       Candidate("b", model_score=0.5, model_rank=1)], ctx, k=2)
        hit_rate = 0.4 if i < 2_000 else 0.05
        clicked = "a" if rng.random() < hit_rate else "zz"
        feedback.observe(state, ClickEvent(f"c{i}", "u", clicked, "click", i))
        if feedback.drifts and drift_at is None:
            drift_at = i
    assert drift_at is not None and 2_000 <= drift_at < 2_500
    events = feedback.drain_events()
    drifts = [e for e in events if e["type"] == DRIFT]
    assert len(drifts) == 1 and drifts[0]["request"] == "retrain" and drifts[0]["worker"] == "w1"
    # the record's "at" is wall-clock ms (as in every model event), the detector's count apart
    assert drifts[0]["at"] > 1_600_000_000_000 and 0 < drifts[0]["at_update"] <= 4_000
    reports = [e for e in events if e["type"] == HIT_RATE]
    assert len(reports) == 8 and reports[0]["versions"]["sasrec:1"]["n"] == 500
    assert reranker.n_learned > 0
    assert feedback.drain_events() == []


def test_a_new_version_restarts_the_drift_reference() -> None:
    feedback = AdaptiveFeedback(None, HitRateDriftDetector(warmup=0))
    for i in range(50):
        feedback.observe(listed(["a"], model="v1"), ClickEvent(f"a{i}", "u", "a", "click", i))
    feedback.observe(listed(["a"], model="v2"), ClickEvent("b", "u", "a", "click", 99))
    assert feedback.live_model == "v2" and feedback.detector.n == 51
    feedback.observe(listed(["a"], model="fallback"), ClickEvent("c", "u", "a", "click", 100))
    assert feedback.live_model == "v2"
    width = feedback.detector.adwin.width
    # lists the old version sent are still scored after the switch: no restart for them
    for i in range(20):
        model = "v1" if i % 2 else "v2"
        feedback.observe(listed(["a"], model=model), ClickEvent(f"d{i}", "u", "a", "click", i))
    assert feedback.live_model == "v2" and feedback.detector.adwin.width == width + 20
