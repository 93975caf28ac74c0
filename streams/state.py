"""Per-user temporal state: a pure object updated one event at a time.

The Faust worker keeps one :class:`UserState` per user in a table backed by its changelog topic
and mirrors it to Redis; the prequential replay uses the very same object.

>>> s = UserState("u1")
>>> s.update(ClickEvent("e1", "u1", "i1", "click", 1_000), categories=("Drama",))
True
>>> s.update(ClickEvent("e1", "u1", "i1", "click", 1_000))  # a repeated event_id changes nothing
False
>>> s.recent_items()
['i1']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamrec.core.events import ClickEvent

# how much an interaction says about interest, by event type
TYPE_WEIGHT = {"view": 0.5, "click": 1.0, "rating": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass(slots=True)
class StateConfig:
    """How much the worker keeps per user.

    ``history_length`` is a user-state setting (interactions kept for the candidate sources and
    the model's input), not the model's sequence length: the client cuts each history to the
    live version's ``seq_len`` (its model card) when it builds the model's input.
    """

    history_length: int = 50
    session_gap_ms: int = 30 * 60 * 1000
    interest_half_life_ms: int = 7 * 24 * 3600 * 1000
    seen_capacity: int = 2000
    dedup_capacity: int = 256


def decay(value: float, elapsed_ms: int, half_life_ms: int) -> float:
    """Exponential decay of ``value`` after ``elapsed_ms`` with the given half-life.

    >>> decay(8.0, 2_000, 1_000)
    2.0
    """
    if elapsed_ms <= 0 or half_life_ms <= 0:
        return value
    return value * math.pow(0.5, elapsed_ms / half_life_ms)


@dataclass(slots=True)
class UserState:
    """Everything the recommender remembers about one user, in event time."""

    user_id: str
    # the last `history_length` interactions: [item_id, type, ts]
    history: list[list[Any]] = field(default_factory=list)
    # every consumed item (insertion-ordered, capped): excluded from recommendations
    seen: list[str] = field(default_factory=list)
    # recently processed event ids (capped): a repeat changes nothing
    recent_event_ids: list[str] = field(default_factory=list)
    # category -> [decayed weight, ts of that weight]
    interests: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    session_index: int = 0
    session_start_ts: int = 0
    last_ts: int = 0
    # the last list we sent this user: {"event_id", "model", "items": [item ids]}
    last_recommended: dict[str, Any] | None = None

    # --- the verbs -------------------------------------------------------------------------
    def update(
        self,
        event: ClickEvent,
        categories: Iterable[str] = (),
        config: StateConfig | None = None,
    ) -> bool:
        """Apply one event; returns False (and changes nothing) for a repeated ``event_id``."""
        cfg = config or StateConfig()
        if event.event_id in self.recent_event_ids:
            return False
        self.recent_event_ids.append(event.event_id)
        del self.recent_event_ids[: -cfg.dedup_capacity]

        if self.last_ts == 0 or event.ts - self.last_ts > cfg.session_gap_ms:
            self.session_index += 1
            self.session_start_ts = event.ts
        self.last_ts = max(self.last_ts, event.ts)

        self.history.append([event.item_id, event.type, event.ts])
        del self.history[: -cfg.history_length]
        self._mark_seen(event.item_id, cfg.seen_capacity)

        weight = TYPE_WEIGHT.get(event.type, 1.0)
        for category in categories:
            current = self.interest(category, event.ts, cfg.interest_half_life_ms)
            self.interests[category] = [current + weight, float(event.ts)]
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        return True

    def _mark_seen(self, item_id: str, capacity: int) -> None:
        if item_id in self.seen:
            return
        self.seen.append(item_id)
        del self.seen[:-capacity]

    # --- reads -----------------------------------------------------------------------------
    def recent_items(self, n: int | None = None) -> list[str]:
        items = [h[0] for h in self.history]
        return items if n is None else items[-n:]

    @property
    def last_item(self) -> str | None:
        return self.history[-1][0] if self.history else None

    @property
    def previous_item(self) -> str | None:
        """The item before the latest one, if it was in the same session."""
        if len(self.history) < 2:
            return None
        return self.history[-2][0]

    def same_session_as_previous(self, session_gap_ms: int) -> bool:
        if len(self.history) < 2:
            return False
        return 0 <= self.history[-1][2] - self.history[-2][2] <= session_gap_ms

    def interest(self, category: str, now_ts: int, half_life_ms: int) -> float:
        value, at = self.interests.get(category, (0.0, float(now_ts)))
        return decay(value, now_ts - int(at), half_life_ms)

    def top_interests(self, now_ts: int, half_life_ms: int, n: int = 5) -> list[tuple[str, float]]:
        scored = [(c, self.interest(c, now_ts, half_life_ms)) for c in self.interests]
        return sorted(scored, key=lambda kv: -kv[1])[:n]

    @property
    def total_events(self) -> int:
        return sum(self.counts.values())

    # --- serialisation (Faust table values, Redis mirror) ----------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "history": self.history,
            "seen": self.seen,
            "recent_event_ids": self.recent_event_ids,
            "interests": self.interests,
            "counts": self.counts,
            "session_index": self.session_index,
            "session_start_ts": self.session_start_ts,
            "last_ts": self.last_ts,
            "last_recommended": self.last_recommended,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        return cls(
            user_id=data["user_id"],
            history=[list(h) for h in data.get("history", [])],
            seen=list(data.get("seen", [])),
            recent_event_ids=list(data.get("recent_event_ids", [])),
            interests={k: list(v) for k, v in data.get("interests", {}).items()},
            counts=dict(data.get("counts", {})),
            session_index=int(data.get("session_index", 0)),
            session_start_ts=int(data.get("session_start_ts", 0)),
            last_ts=int(data.get("last_ts", 0)),
            last_recommended=data.get("last_recommended"),
        )

    def summary(self, half_life_ms: int) -> dict[str, Any]:
        """The compact view mirrored to Redis for consumers that read rather than subscribe."""
        return {
            "user_id": self.user_id,
            "recent_items": self.recent_items(10),
            "session_index": self.session_index,
            "last_ts": self.last_ts,
            "counts": self.counts,
            "top_interests": [
                [c, round(v, 4)] for c, v in self.top_interests(self.last_ts, half_life_ms)
            ],
        }


def seen_set(state: UserState, extra: Sequence[str] = ()) -> set[str]:
    return set(state.seen).union(extra)
