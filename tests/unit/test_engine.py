from __future__ import annotations

import asyncio

from streamrec.core.events import CatalogItem, ClickEvent
from streams.engine import (
    FALLBACK,
    Catalog,
    EngineConfig,
    ModelAnswer,
    ModelUnavailable,
    RecommendationEngine,
)
from streams.signals import InMemorySignals
from streams.state import UserState

HOUR = 3_600_000


class ListModel:
    """A stand-in model: proposes a fixed list, or is down."""

    def __init__(self, items: list[str], down: bool = False, slow_s: float = 0.0) -> None:
        self.items, self.down, self.slow_s = items, down, slow_s
        self.calls: list[tuple[list[list[str]], list[list[str]]]] = []

    async def recommend(self, sequences, exclude, k):  # type: ignore[no-untyped-def]
        self.calls.append((sequences, exclude))
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.down:
            raise ModelUnavailable("down")
        return ModelAnswer([[(i, 1.0 - n / 10) for n, i in enumerate(self.items)]
                            for _ in sequences], "sasrec:1")


def engine(model=None, items=()):  # type: ignore[no-untyped-def]
    catalog = Catalog([CatalogItem(i, title=f"Title {i}", categories=("c",)) for i in items])
    return RecommendationEngine(
        InMemorySignals(window_ms=24 * HOUR, hop_ms=HOUR), catalog, model=model,
        config=EngineConfig(k=3, model_timeout_s=0.05),
    )


def ev(i: int, user: str, item: str, ts: int) -> ClickEvent:
    return ClickEvent(f"e{i}", user, item, "click", ts)


def run(e, events, states=None):  # type: ignore[no-untyped-def]
    states = {} if states is None else states
    return asyncio.run(e.process_batch(events, states)), states


def test_fallback_answers_from_stream_signals_and_excludes_seen_items() -> None:
    e = engine(items="abcd")
    recs, states = run(e, [ev(1, "u1", "a", 1), ev(2, "u1", "b", 2), ev(3, "u2", "a", 3),
                           ev(4, "u2", "c", 4)])
    assert [r.event_id for r in recs] == ["e1", "e2", "e3", "e4"]
    assert all(r.model == FALLBACK for r in recs)
    last = recs[-1]  # u2 after a -> c: co-visitation says b follows a
    ids = [i.item_id for i in last.items]
    assert "a" not in ids and "c" not in ids
    assert ids[0] == "b" and last.items[0].reason == "often watched after Title a"
    assert states["u2"].last_recommended["items"] == ids


def test_model_answers_are_labelled_and_exclusions_sent() -> None:
    model = ListModel(["x", "a", "y", "z"])
    e = engine(model, items="axyz")
    recs, _ = run(e, [ev(1, "u1", "a", 1)])
    assert recs[0].model == "sasrec:1"
    assert [i.item_id for i in recs[0].items] == ["x", "y", "z"]  # seen "a" removed
    assert model.calls[0][0] == [["a"]] and "a" in model.calls[0][1][0]


def test_model_down_or_slow_falls_back() -> None:
    for model in (ListModel(["x"], down=True), ListModel(["x"], slow_s=0.5)):
        e = engine(model, items="ax")
        recs, _ = run(e, [ev(1, "u1", "a", 1)])
        assert recs[0].model == FALLBACK
        assert e.stats.fallbacks == 1


def test_repeated_event_is_answered_again_without_a_second_update() -> None:
    e = engine(items="ab")
    states: dict[str, UserState] = {}
    run(e, [ev(1, "u1", "a", 1)], states)
    before = list(states["u1"].history)
    recs, _ = run(e, [ev(1, "u1", "a", 1)], states)
    assert len(recs) == 1 and recs[0].event_id == "e1"
    assert states["u1"].history == before
    assert e.stats.duplicates == 1


def test_deactivated_items_leave_every_source() -> None:
    model = ListModel(["x", "y"])
    e = engine(model, items="axy")
    e.catalog.update(CatalogItem("x", active=False))
    recs, _ = run(e, [ev(1, "u1", "a", 1)])
    assert "x" not in [i.item_id for i in recs[0].items]
    assert "x" in model.calls[0][1][0]
