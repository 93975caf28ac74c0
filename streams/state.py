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

import base64
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamrec.core.events import ClickEvent

# how much an interaction says about interest, by event type
TYPE_WEIGHT = {"view": 0.5, "click": 1.0, "rating": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
# event ids up to this length are kept as they are; longer ones (UUIDs) as a 64-bit fingerprint
EVENT_KEY_MAX = 12
# interest weights are kept to this many decimals (exact through the table's encoding)
INTEREST_DECIMALS = 4
ENCODING_VERSION = 2


def event_key(event_id: str) -> str:
    """What the dedup window keeps of an event id: short ids as they are, longer ones as a
    64-bit blake2b fingerprint (11 base64 characters; "#" marks it). Two distinct long ids of
    one user collide with probability ~capacity / 2^64 per event.

    >>> event_key("ml-55286")
    'ml-55286'
    >>> len(event_key("0b7f4e7e-3f7c-4a43-9d43-1f1c6b0d2a11"))
    12
    """
    if len(event_id) <= EVENT_KEY_MAX:
        return event_id
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return "#" + base64.urlsafe_b64encode(digest).decode()[:11]


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
    # every consumed item, least recently consumed first (capped): excluded from
    # recommendations; its tail is always the history's items, which the encoding relies on
    seen: list[str] = field(default_factory=list)
    # recently processed events' keys (:func:`event_key`, capped): a repeat changes nothing
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
        key = event_key(event.event_id)
        if key in self.recent_event_ids:
            return False
        self.recent_event_ids.append(key)
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
            self.interests[category] = [round(current + weight, INTEREST_DECIMALS),
                                        float(event.ts)]
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        return True

    def _mark_seen(self, item_id: str, capacity: int) -> None:
        """Move ``item_id`` to the most recent end (least recently consumed evicted first)."""
        if self.seen and self.seen[-1] == item_id:
            return
        if item_id in self.seen:
            self.seen.remove(item_id)
        self.seen.append(item_id)
        del self.seen[:-capacity]

    def has_event(self, event_id: str) -> bool:
        """Whether this event was already applied (within the dedup window)."""
        return event_key(event_id) in self.recent_event_ids

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

    # --- serialisation (Faust table values) -----------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The table's compact encoding (version 2): the history as parallel columns with
        time deltas, the seen-set without the history's items (its tail, see ``seen``),
        interest times relative to ``last_ts``. :meth:`from_dict` restores it exactly."""
        items = [h[0] for h in self.history]
        types = [h[1] for h in self.history]
        times = [h[2] for h in self.history]
        in_history = set(items)
        older = [item for item in self.seen if item not in in_history]
        data: dict[str, Any] = {
            "v": ENCODING_VERSION,
            "u": self.user_id,
            "i": items,
            "y": types[0] if types and types.count(types[0]) == len(types) else types,
            "t": [b - a for a, b in zip([0, *times[:-1]], times, strict=True)],
            "s": older,
            "e": self.recent_event_ids,
            "n": {c: [w, self.last_ts - int(at)] for c, (w, at) in self.interests.items()},
            "c": self.counts,
            "x": [self.session_index, self.session_start_ts, self.last_ts],
        }
        if self.last_recommended is not None:
            data["r"] = self.last_recommended
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserState:
        if data.get("v") != ENCODING_VERSION:
            return cls._from_v1(data)
        items: list[str] = data["i"]
        types = data["y"] if isinstance(data["y"], list) else [data["y"]] * len(items)
        times, ts = [], 0
        for delta in data["t"]:
            ts += delta
            times.append(ts)
        session_index, session_start_ts, last_ts = data["x"]
        return cls(
            user_id=data["u"],
            history=[[i, y, t] for i, y, t in zip(items, types, times, strict=True)],
            seen=[*data["s"], *_last_occurrences(items)],
            recent_event_ids=list(data["e"]),
            interests={c: [w, float(last_ts - back)] for c, (w, back) in data["n"].items()},
            counts=dict(data["c"]),
            session_index=session_index,
            session_start_ts=session_start_ts,
            last_ts=last_ts,
            last_recommended=data.get("r"),
        )

    @classmethod
    def _from_v1(cls, data: dict[str, Any]) -> UserState:
        """The first encoding (plain field names), still found in older changelogs; its
        seen-set was in first-consumption order: the history's items move to its tail."""
        history = [list(h) for h in data.get("history", [])]
        in_history = {h[0] for h in history}
        seen = [item for item in data.get("seen", []) if item not in in_history]
        return cls(
            user_id=data["user_id"],
            history=history,
            seen=[*seen, *_last_occurrences([h[0] for h in history])],
            recent_event_ids=[event_key(e) for e in data.get("recent_event_ids", [])],
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


def _last_occurrences(items: list[str]) -> list[str]:
    """Distinct items in the order of their last occurrence.

    >>> _last_occurrences(["a", "b", "a", "c"])
    ['b', 'a', 'c']
    """
    return list(dict.fromkeys(reversed(items)))[::-1]


def seen_set(state: UserState, extra: Sequence[str] = ()) -> set[str]:
    return set(state.seen).union(extra)
