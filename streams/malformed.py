"""Malformed click records of many kinds, for the demo and the tests.

Each kind is a function from a valid event (a dict) to the raw bytes of a broken record, so the
broken records look like the real traffic around them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _without(field: str) -> Callable[[Event], bytes]:
    return lambda e: _dump({k: v for k, v in e.items() if k != field})


def _with(field: str, value: Any) -> Callable[[Event], bytes]:
    return lambda e: _dump({**e, field: value})


MALFORMED_KINDS: dict[str, Callable[[Event], bytes]] = {
    "truncated_json": lambda e: _dump(e)[:-7],
    "not_json": lambda e: b"user=" + e["user_id"].encode() + b";item=" + e["item_id"].encode(),
    "json_array": lambda e: _dump([e["user_id"], e["item_id"]]),
    "json_number": lambda e: b"42",
    "json_string": lambda e: _dump("click"),
    "json_null": lambda e: b"null",
    "empty_bytes": lambda e: b"",
    "not_utf8": lambda e: b"\xff\xfe\x00" + _dump(e)[3:],
    "missing_event_id": _without("event_id"),
    "missing_user_id": _without("user_id"),
    "missing_item_id": _without("item_id"),
    "missing_type": _without("type"),
    "missing_ts": _without("ts"),
    "user_id_int": lambda e: _dump({**e, "user_id": 17}),
    "item_id_list": _with("item_id", ["a", "b"]),
    "ts_string": lambda e: _dump({**e, "ts": str(e["ts"])}),
    "ts_float": lambda e: _dump({**e, "ts": e["ts"] + 0.5}),
    "ts_negative": _with("ts", -5),
    "ts_far_future": _with("ts", 32_503_680_000_000),  # year 3000
    "unknown_type": _with("type", "teleport"),
    "type_int": _with("type", 3),
    "empty_user_id": _with("user_id", ""),
    "blank_item_id": _with("item_id", "   "),
    "overlong_event_id": _with("event_id", "e" * 500),
    "rating_string": _with("rating", "five"),
    "context_string": _with("context", "mobile"),
    "dwell_negative": _with("dwell_ms", -1),
    "oversized": lambda e: _dump({**e, "context": {"blob": "x" * 70_000}}),
    # past Python's int max str digits: json.loads raises ValueError (the poison pill)
    "huge_integer": lambda e: _dump({**e, "context": "@"}).replace(b'"@"', b"9" * 5001),
    "nan_rating": lambda e: _dump({**e, "rating": float("nan")}),
    "lone_surrogate": lambda e: _dump({**e, "user_id": "@"}).replace(b'"@"', b'"\\ud800"'),
    "deeply_nested": lambda e: b"[" * 5000 + b"]" * 5000,
    "type_list": _with("type", ["click"]),
}


def malformed_record(event: Event, kind: str) -> bytes:
    return MALFORMED_KINDS[kind](event)


def mix_malformed(
    events: list[Event], share: float, seed: int = 7
) -> list[tuple[bytes | None, bytes, bool, str]]:
    """Interleave malformed records among ``events`` at about ``share`` of the total.

    Returns (key, raw value, is_valid, kind) in sending order; every kind appears at least once
    when there are enough malformed slots.
    """
    rng = random.Random(seed)
    n_bad = round(len(events) * share / max(1e-9, 1 - share)) if share > 0 else 0
    kinds = list(MALFORMED_KINDS)
    out: list[tuple[bytes | None, bytes, bool, str]] = [
        (e["user_id"].encode(), _dump(e), True, "valid") for e in events
    ]
    for i in range(n_bad):
        template = rng.choice(events) if events else {"event_id": "x", "user_id": "u",
                                                       "item_id": "i", "type": "click", "ts": 0}
        template = {**template, "event_id": f"bad-{i}"}
        kind = kinds[i % len(kinds)]
        key = template["user_id"].encode() if isinstance(template["user_id"], str) else None
        record = (key, malformed_record(template, kind), False, kind)
        out.insert(rng.randrange(len(out) + 1), record)
    return out
