from __future__ import annotations

import asyncio

from streams.signals import CoVisitation, InMemorySignals, Transition, TrendingCounter

HOUR = 3_600_000


def test_trending_counts_only_the_event_time_window() -> None:
    t = TrendingCounter(window_ms=2 * HOUR, hop_ms=HOUR)
    t.learn_one("old", 0)
    t.learn_one("old", 10)
    t.learn_one("new", 2 * HOUR + 5)
    # at 2h+: the window holds hops [1h, 3h): "old" (hop 0) has left
    assert t.predict_one(now_ts=2 * HOUR + 10, k=5) == [("new", 1.0)]


def test_trending_ties_are_deterministic() -> None:
    t = TrendingCounter(window_ms=HOUR, hop_ms=HOUR)
    for item in ("b", "a", "c", "a"):
        t.learn_one(item, 1)
    assert t.predict_one(now_ts=2, k=3) == [("a", 2.0), ("b", 1.0), ("c", 1.0)]


def test_covisitation_is_directed_and_ignores_self_pairs() -> None:
    c = CoVisitation()
    c.learn_one("a", "b")
    c.learn_one("a", "a")
    assert c.predict_one("a", 5) == [("b", 1.0)]
    assert c.predict_one("b", 5) == []


def test_in_memory_signals_observe_then_fetch() -> None:
    s = InMemorySignals(window_ms=HOUR, hop_ms=HOUR)
    snap = asyncio.run(s.observe_and_fetch(
        [Transition("a", 1), Transition("b", 2, previous_item="a")], {"a"}, now_ts=3))
    assert snap.covisited == {"a": [("b", 1.0)]}
    assert dict(snap.trending) == {"a": 1.0, "b": 1.0}
