"""The event contract: click events, catalogue items, recommendations and dead letters.

Validation is a pure function from raw bytes to either a typed event or a :class:`Rejection`
carrying a human-readable reason. Nothing raises on bad input.

>>> ok = parse_click(b'{"event_id":"e1","user_id":"u1","item_id":"i9","type":"click",'
...                  b'"ts":1700000000000}', now_ms=1700000000000)
>>> ok.item_id
'i9'
>>> print(parse_click(b'{"event_id":"e1"', now_ms=0).reason)
malformed JSON: Expecting ',' delimiter at char 16
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

EVENT_TYPES = frozenset({"view", "click", "add_to_cart", "purchase", "rating"})
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One user interaction; ``ts`` is event time in epoch milliseconds."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    ts: int
    rating: float | None = None
    dwell_ms: int | None = None
    session_id: str | None = None
    context: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """A catalogue entry from the ``items`` topic; ``active=False`` withdraws the item."""

    item_id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()
    vector: tuple[float, ...] | None = None
    active: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item_id": self.item_id,
            "title": self.title,
            "text": self.text,
            "categories": list(self.categories),
            "active": self.active,
        }
        if self.vector is not None:
            out["vector"] = list(self.vector)
        return out


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused; becomes a dead letter."""

    reason: str


@dataclass(slots=True)
class RecommendedItem:
    item_id: str
    score: float
    reason: str


@dataclass(slots=True)
class Recommendation:
    """What goes out on the ``recommendations`` topic, keyed by user."""

    user_id: str
    event_id: str
    items: list[RecommendedItem]
    model: str
    generated_at: int
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "event_id": self.event_id,
            "items": [
                {"item_id": i.item_id, "score": round(float(i.score), 6), "reason": i.reason}
                for i in self.items
            ],
            "model": self.model,
            "generated_at": self.generated_at,
            "latency_ms": round(self.latency_ms, 3),
            **self.extra,
        }


def now_ms() -> int:
    return int(time.time() * 1000)


def _check_id(obj: dict[str, Any], name: str, max_len: int) -> str | Rejection:
    if name not in obj:
        return Rejection(f"missing field '{name}'")
    value = obj[name]
    if not isinstance(value, str):
        return Rejection(f"field '{name}' must be a string, got {_json_type(value)}")
    if not value.strip():
        return Rejection(f"field '{name}' is empty")
    if len(value) > max_len:
        return Rejection(f"field '{name}' is longer than {max_len} characters")
    return value


def _decode_object(raw: bytes | None, max_bytes: int) -> dict[str, Any] | Rejection:
    if raw is None:
        return Rejection("empty record (null value)")
    if len(raw) > max_bytes:
        return Rejection(f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(f"malformed JSON: {exc.msg} at char {exc.pos}")
    except RecursionError:
        return Rejection("malformed JSON: nested too deeply")
    if not isinstance(obj, dict):
        return Rejection(f"JSON value must be an object, got {_json_type(obj)}")
    return obj


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {"str": "string", "list": "array", "dict": "object"}.get(type(value).__name__, "value")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def parse_click(
    raw: bytes | None,
    *,
    now_ms: int | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
    max_id_length: int = MAX_ID_LENGTH,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
) -> ClickEvent | Rejection:
    """Validate one ``clicks`` record; never raises."""
    obj = _decode_object(raw, max_bytes)
    if isinstance(obj, Rejection):
        return obj
    ids: dict[str, str] = {}
    for name in ("event_id", "user_id", "item_id"):
        checked = _check_id(obj, name, max_id_length)
        if isinstance(checked, Rejection):
            return checked
        ids[name] = checked
    kind = obj.get("type")
    if kind is None:
        return Rejection("missing field 'type'")
    if kind not in EVENT_TYPES:
        return Rejection(f"unknown event type {str(kind)[:40]!r}; expected one of "
                         f"{'|'.join(sorted(EVENT_TYPES))}")
    ts = obj.get("ts")
    if ts is None:
        return Rejection("missing field 'ts'")
    if not isinstance(ts, int) or isinstance(ts, bool):
        kind_name = "a fraction" if isinstance(ts, float) else _json_type(ts)
        return Rejection(f"field 'ts' must be an integer (epoch ms), got {kind_name}")
    if ts < 0:
        return Rejection("field 'ts' is negative")
    now = now_ms if now_ms is not None else globals()["now_ms"]()
    if ts > now + max_future_skew_ms:
        return Rejection(f"field 'ts' is {(ts - now) // 1000} s in the future")
    rating = obj.get("rating")
    if rating is not None and not _is_number(rating):
        return Rejection("field 'rating' must be a number")
    dwell = obj.get("dwell_ms")
    if dwell is not None and (not isinstance(dwell, int) or isinstance(dwell, bool) or dwell < 0):
        return Rejection("field 'dwell_ms' must be a non-negative integer")
    session = obj.get("session_id")
    if session is not None and (not isinstance(session, str) or len(session) > max_id_length):
        return Rejection(f"field 'session_id' must be a string of at most {max_id_length} chars")
    context = obj.get("context")
    if context is not None and not isinstance(context, dict):
        return Rejection("field 'context' must be an object")
    return ClickEvent(
        event_id=ids["event_id"],
        user_id=ids["user_id"],
        item_id=ids["item_id"],
        type=kind,
        ts=ts,
        rating=float(rating) if rating is not None else None,
        dwell_ms=dwell,
        session_id=session,
        context=context,
    )


def parse_item(
    raw: bytes | None, *, max_bytes: int = MAX_EVENT_BYTES, max_id_length: int = MAX_ID_LENGTH
) -> CatalogItem | Rejection:
    """Validate one ``items`` record; never raises."""
    obj = _decode_object(raw, max_bytes)
    if isinstance(obj, Rejection):
        return obj
    item_id = _check_id(obj, "item_id", max_id_length)
    if isinstance(item_id, Rejection):
        return item_id
    active = obj.get("active", True)
    if not isinstance(active, bool):
        return Rejection("field 'active' must be a boolean")
    for name in ("title", "text"):
        if name in obj and not isinstance(obj[name], str):
            return Rejection(f"field '{name}' must be a string")
    categories = obj.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        return Rejection("field 'categories' must be a list of strings")
    vector = obj.get("vector")
    if vector is not None:
        if not isinstance(vector, list) or not all(_is_number(v) for v in vector):
            return Rejection("field 'vector' must be a list of numbers")
        vector = tuple(float(v) for v in vector)
    return CatalogItem(
        item_id=item_id,
        title=obj.get("title", ""),
        text=obj.get("text", ""),
        categories=tuple(categories),
        vector=vector,
        active=active,
    )


def dead_letter(
    raw: bytes | None, reason: str, *, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    """The ``clicks.dlq`` record: original bytes (base64 when not UTF-8), origin and reason."""
    record: dict[str, Any] = {
        "reason": reason,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "rejected_at": now_ms(),
    }
    if raw is None:
        record["original"] = None
        record["original_encoding"] = "null"
    else:
        try:
            record["original"] = raw.decode("utf-8")
            record["original_encoding"] = "utf-8"
        except UnicodeDecodeError:
            record["original"] = base64.b64encode(raw).decode("ascii")
            record["original_encoding"] = "base64"
    return record
