from __future__ import annotations

import pytest

from streamrec.core.events import ClickEvent
from streams.state import StateConfig, UserState, decay

MIN = 60_000


def click(i: int, item: str, ts: int, kind: str = "click") -> ClickEvent:
    return ClickEvent(f"e{i}", "u1", item, kind, ts)


def test_history_keeps_the_last_n_in_order() -> None:
    state = UserState("u1")
    cfg = StateConfig(history_length=3)
    for i in range(5):
        state.update(click(i, f"i{i}", i * MIN), config=cfg)
    assert state.recent_items() == ["i2", "i3", "i4"]
    # the seen-set keeps everything, not only the last n
    assert state.seen == ["i0", "i1", "i2", "i3", "i4"]


def test_repeated_event_id_changes_nothing() -> None:
    state = UserState("u1")
    assert state.update(click(1, "a", MIN), categories=("Drama",))
    before = state.to_dict()
    assert not state.update(click(1, "a", MIN), categories=("Drama",))
    assert state.to_dict() == before


def test_sessions_split_after_thirty_minutes_of_inactivity() -> None:
    state = UserState("u1")
    for i, ts in enumerate([0, 10 * MIN, 39 * MIN, 70 * MIN, 71 * MIN]):
        state.update(click(i, f"i{i}", 1 + ts))
    # gaps: 10, 29 (same session), 31 (new), 1
    assert state.session_index == 2
    assert state.same_session_as_previous(30 * MIN)


def test_interest_decays_with_event_time() -> None:
    cfg = StateConfig(interest_half_life_ms=10 * MIN)
    state = UserState("u1")
    state.update(click(1, "a", 1), categories=("Drama",), config=cfg)
    assert state.interest("Drama", 1, cfg.interest_half_life_ms) == pytest.approx(1.0)
    assert state.interest("Drama", 1 + 10 * MIN, cfg.interest_half_life_ms) == pytest.approx(0.5)
    state.update(click(2, "b", 1 + 10 * MIN, "purchase"), categories=("Drama",), config=cfg)
    assert state.interest("Drama", 1 + 10 * MIN, cfg.interest_half_life_ms) == pytest.approx(3.5)
    assert state.counts == {"click": 1, "purchase": 1}


def test_decay_half_life() -> None:
    assert decay(4.0, 0, 100) == 4.0
    assert decay(4.0, 200, 100) == pytest.approx(1.0)


def test_dedup_and_seen_are_capped() -> None:
    cfg = StateConfig(seen_capacity=10, dedup_capacity=5)
    state = UserState("u1")
    for i in range(50):
        state.update(click(i, f"i{i}", i * MIN), config=cfg)
    assert len(state.seen) == 10 and len(state.recent_event_ids) == 5


def test_round_trip_through_dict() -> None:
    state = UserState("u1")
    state.update(click(1, "a", MIN), categories=("Drama", "War"))
    state.last_recommended = {"event_id": "e1", "items": ["b"], "model": "fallback"}
    assert UserState.from_dict(state.to_dict()) == state
    assert state.summary(10 * MIN)["recent_items"] == ["a"]
