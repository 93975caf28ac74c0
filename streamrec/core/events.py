"""The event contract: click events, catalogue items, recommendations and dead letters.

Validation is a pure, total function from raw bytes to either a typed event or a
:class:`Rejection` carrying a human-readable reason: nothing raises on bad input, whatever the
bytes (binary, truncated or deeply nested JSON, integers past Python's digit limit, NaN,
lone surrogates, absurd timestamps). :func:`dead_letter` is total too, and its record is
bounded (:data:`MAX_DEAD_LETTER_BYTES`) whatever the size of the original.

>>> ok = parse_click(b'{"event_id":"e1","user_id":"u1","item_id":"i9","type":"click",'
...                  b'"ts":1700000000000}', now_ms=1700000000000)
>>> ok.item_id
'i9'
>>> print(parse_click(b'{"event_id":"e1"', now_ms=0).reason)
malformed JSON: Expecting ',' delimiter at char 16
>>> print(parse_click(b'{"ts": ' + b'9' * 5001 + b'}', now_ms=0).reason)
malformed JSON: Exceeds the limit (4300 digits) for integer string conversion...
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

EVENT_TYPES = frozenset({"view", "click", "add_to_cart", "purchase", "rating"})
MAX_EVENT_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000
# integers past this are not exact in a double (JSON readers in other languages lose them)
MAX_SAFE_INTEGER = 2**53 - 1
# a dead letter carries at most this many bytes of the original (plus its size and SHA-256)
DEAD_LETTER_PREFIX_BYTES = 1024
MAX_REASON_CHARS = 500
# a dead letter keeps the original's key (its partitioning) when it is at most this long
MAX_DEAD_LETTER_KEY_BYTES = 256
# no dead letter is longer than this once JSON-encoded (escapes included), however big the
# original: far under a producer's 1 MiB request limit
MAX_DEAD_LETTER_BYTES = 16 * 1024
# a JSON escape of a UTF-16 surrogate: json.loads turns a lone one into a str no codec encodes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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
    if not isinstance(raw, bytes | bytearray | memoryview):
        return Rejection(f"record value must be bytes, got {type(raw).__name__}")
    if len(raw) > max_bytes:
        return Rejection(f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return Rejection(f"malformed JSON: {exc.msg} at char {exc.pos}")
    except RecursionError:
        return Rejection("malformed JSON: nested too deeply")
    except ValueError as exc:  # integers past the digit limit, NaN/Infinity
        return Rejection(f"malformed JSON: {_clip(str(exc))}")
    if not isinstance(obj, dict):
        return Rejection(f"JSON value must be an object, got {_json_type(obj)}")
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(obj):
        return Rejection("malformed JSON: a string holds a lone UTF-16 surrogate")
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _encodable(obj: dict[str, Any]) -> bool:
    """Whether every string in ``obj`` encodes to UTF-8 (no lone surrogate)."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return False
    return True


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {"str": "string", "list": "array", "dict": "object"}.get(type(value).__name__, "value")


def _is_number(value: Any) -> bool:
    """A finite JSON number that fits a double (a 400-digit integer does not)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and abs(value) <= MAX_SAFE_INTEGER


def _is_count(value: Any) -> bool:
    """A non-negative integer that a double holds exactly."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_SAFE_INTEGER)


def parse_click(
    raw: bytes | None,
    *,
    now_ms: int | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
    max_id_length: int = MAX_ID_LENGTH,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
) -> ClickEvent | Rejection:
    """Validate one ``clicks`` record; never raises (any bytes give an event or a rejection)."""
    try:
        return _parse_click(raw, now_ms, max_bytes, max_id_length, max_future_skew_ms)
    except Exception as exc:  # a case the checks below missed: still a rejection, not a crash
        return Rejection(f"unreadable record: {type(exc).__name__}: {_clip(str(exc))}")


def _parse_click(
    raw: bytes | None,
    now: int | None,
    max_bytes: int,
    max_id_length: int,
    max_future_skew_ms: int,
) -> ClickEvent | Rejection:
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
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        shown = kind if isinstance(kind, str) else _json_type(kind)
        return Rejection(f"unknown event type {_clip(shown, 40)!r}; expected one of "
                         f"{'|'.join(sorted(EVENT_TYPES))}")
    ts = obj.get("ts")
    if ts is None:
        return Rejection("missing field 'ts'")
    if not isinstance(ts, int) or isinstance(ts, bool):
        kind_name = "a fraction" if isinstance(ts, float) else _json_type(ts)
        return Rejection(f"field 'ts' must be an integer (epoch ms), got {kind_name}")
    if ts < 0:
        return Rejection("field 'ts' is negative")
    if now is None:
        now = now_ms()
    if ts > now + max_future_skew_ms:
        ahead = (ts - now) // 1000
        return Rejection(f"field 'ts' is {ahead if ahead < 10**12 else 'ages'} s in the future")
    rating = obj.get("rating")
    if rating is not None and not _is_number(rating):
        return Rejection("field 'rating' must be a finite number")
    dwell = obj.get("dwell_ms")
    if dwell is not None and not _is_count(dwell):
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
    """Validate one ``items`` record; never raises (any bytes give an item or a rejection)."""
    try:
        return _parse_item(raw, max_bytes, max_id_length)
    except Exception as exc:  # a case the checks below missed: still a rejection, not a crash
        return Rejection(f"unreadable record: {type(exc).__name__}: {_clip(str(exc))}")


def _parse_item(raw: bytes | None, max_bytes: int, max_id_length: int) -> CatalogItem | Rejection:
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
            return Rejection("field 'vector' must be a list of finite numbers")
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
    """The dead-letter record (``clicks.dlq``) for a refused record; never raises.

    It carries a bounded prefix of the original, so it always fits: JSON-encoded it is at most
    :data:`MAX_DEAD_LETTER_BYTES` (topic names up to Kafka's 249 characters), whatever the size
    of the original. Schema::

        {"reason": str,                # why, at most MAX_REASON_CHARS characters
         "source": {"topic": str, "partition": int, "offset": int},
         "rejected_at": int,           # epoch ms, wall clock
         "original": str | null,       # the first DEAD_LETTER_PREFIX_BYTES bytes of the value
         "original_encoding": "utf-8" | "base64" | "null",
         "original_bytes": int,        # the whole value's size (0 for a null value)
         "original_sha256": str | null,  # hex digest of the whole value
         "original_truncated": bool}   # true when "original" is only a prefix

    ``original`` is the UTF-8 text of the prefix (a character cut at the boundary is dropped),
    or its base64 when the bytes are not UTF-8.

    >>> d = dead_letter(b'{"a":' + b"x" * 5000, "malformed JSON", topic="clicks", partition=2,
    ...                 offset=9)
    >>> d["original_bytes"], len(d["original"]), d["original_truncated"], d["source"]["offset"]
    (5005, 1024, True, 9)
    """
    record: dict[str, Any] = {
        "reason": _clip(str(reason) or "rejected (no reason given)", MAX_REASON_CHARS),
        "source": {"topic": str(topic), "partition": int(partition), "offset": int(offset)},
        "rejected_at": now_ms(),
    }
    try:
        record.update(_original(raw))
    except Exception as exc:  # a value of an unexpected type: say so, keep the letter
        record.update(original=None, original_encoding="null", original_bytes=0,
                      original_sha256=None, original_truncated=False,
                      reason=_clip(f"{record['reason']} (original unreadable: "
                                   f"{type(exc).__name__})", MAX_REASON_CHARS))
    return record


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's Kafka key: the original key, or ``None`` when it is too long to keep.

    >>> dead_letter_key(b"u42"), dead_letter_key(b"k" * 5000)
    (b'u42', None)
    """
    if isinstance(key, bytes) and len(key) <= MAX_DEAD_LETTER_KEY_BYTES:
        return key
    return None


def _original(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {"original": None, "original_encoding": "null", "original_bytes": 0,
                "original_sha256": None, "original_truncated": False}
    data = bytes(raw)
    prefix = data[:DEAD_LETTER_PREFIX_BYTES]
    try:
        text, encoding = _utf8_prefix(prefix, cut=len(data) > len(prefix)), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(prefix).decode("ascii"), "base64"
    return {"original": text, "original_encoding": encoding, "original_bytes": len(data),
            "original_sha256": hashlib.sha256(data).hexdigest(),
            "original_truncated": len(data) > len(prefix)}


def _utf8_prefix(prefix: bytes, *, cut: bool) -> str:
    """The prefix as text; when the value was ``cut``, a character split at the end is dropped."""
    try:
        return prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.reason == "unexpected end of data" and exc.end == len(prefix):
            return prefix[: exc.start].decode("utf-8")
        raise
