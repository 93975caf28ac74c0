from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.core.events import EVENT_TYPES, ClickEvent
from streams.state import StateConfig, UserState, decay, event_key

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


def test_a_consumed_again_item_moves_to_the_recent_end_of_the_seen_set() -> None:
    state = UserState("u1")
    for i, item in enumerate(["a", "b", "c", "a"]):
        state.update(click(i, item, i * MIN))
    assert state.seen == ["b", "c", "a"]
    cfg = StateConfig(seen_capacity=3)
    state.update(click(9, "d", 9 * MIN), config=cfg)
    assert state.seen == ["c", "a", "d"]  # the least recently consumed went first


def test_long_event_ids_are_kept_as_fingerprints_and_still_deduplicated() -> None:
    long_id = "0b7f4e7e-3f7c-4a43-9d43-1f1c6b0d2a11"
    state = UserState("u1")
    assert state.update(ClickEvent(long_id, "u1", "a", "click", MIN))
    assert state.recent_event_ids == [event_key(long_id)] and len(event_key(long_id)) == 12
    assert state.has_event(long_id)
    assert not state.update(ClickEvent(long_id, "u1", "a", "click", MIN))
    assert state.update(ClickEvent(long_id[:-1] + "2", "u1", "a", "click", 2 * MIN))


def test_the_table_encoding_is_compact() -> None:
    """50 interactions with categories stay under 2 KB (the issue's per-user budget)."""
    state = UserState("u1")
    genres = ["Drama", "Comedy", "Action", "Thriller", "Romance", "War", "Sci-Fi", "Crime"]
    for i in range(50):
        state.update(ClickEvent(f"ml-{50_000 + i}", "u1", str(100 + 7 * i), "rating",
                                874_729_682_000 + 30_000 * i),
                     categories=(genres[i % 8], genres[(i * 3) % 8]))
    assert len(json.dumps(state.to_dict()).encode()) < 2048


def test_the_first_encoding_is_still_read() -> None:
    old = {"user_id": "u1", "history": [["a", "click", 5], ["b", "view", 7]],
           "seen": ["a", "z", "b"], "recent_event_ids": ["e1", "x" * 40],
           "interests": {"Drama": [1.5, 7.0]}, "counts": {"click": 1, "view": 1},
           "session_index": 1, "session_start_ts": 5, "last_ts": 7, "last_recommended": None}
    state = UserState.from_dict(old)
    assert state.recent_items() == ["a", "b"]
    assert state.seen == ["z", "a", "b"]  # the history's items at the recent end
    assert state.has_event("e1") and state.has_event("x" * 40)
    assert UserState.from_dict(state.to_dict()) == state


events = st.lists(
    st.tuples(st.text(min_size=1, max_size=40), st.sampled_from("abcdefghijklmnop"),
              st.sampled_from(sorted(EVENT_TYPES)), st.integers(0, 10**13),
              st.lists(st.sampled_from(["Drama", "War", "Comedy"]), max_size=2)),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_the_table_encoding_round_trips_exactly(stream: list) -> None:
    cfg = StateConfig(history_length=5, seen_capacity=8, dedup_capacity=20)
    state = UserState("u1")
    for event_id, item, kind, ts, categories in stream:
        state.update(ClickEvent(event_id, "u1", item, kind, ts), categories, cfg)
        decoded = UserState.from_dict(json.loads(json.dumps(state.to_dict())))
        assert decoded == state
