"""Properties of the event contract: parsing and dead letters are total and bounded."""

from __future__ import annotations

import base64
import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.core.events import (
    DEAD_LETTER_PREFIX_BYTES,
    MAX_DEAD_LETTER_BYTES,
    CatalogItem,
    ClickEvent,
    Rejection,
    dead_letter,
    dead_letter_key,
    parse_click,
    parse_item,
)
from tests.fuzz_records import (
    bad_clicks,
    bad_items,
    dumps,
    oversized,
    valid_clicks,
    valid_items,
)

NOW = 1_700_000_000_000 + 40 * 86_400_000
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_bytes = st.binary(max_size=3_000) | st.text(max_size=500).map(str.encode)


@FUZZ
@given(any_bytes)
def test_parsing_any_bytes_never_raises(raw: bytes) -> None:
    assert isinstance(parse_click(raw, now_ms=NOW), ClickEvent | Rejection)
    assert isinstance(parse_item(raw), CatalogItem | Rejection)


@FUZZ
@given(bad_clicks)
def test_every_broken_click_is_rejected_with_a_reason(kind_raw: tuple[str, bytes]) -> None:
    kind, raw = kind_raw
    result = parse_click(raw, now_ms=NOW)
    assert isinstance(result, Rejection), (kind, raw[:200])
    assert result.reason


@FUZZ
@given(valid_clicks, st.booleans())
def test_every_valid_click_is_accepted(event: dict, ascii_only: bool) -> None:
    result = parse_click(dumps(event, ascii_only), now_ms=NOW)
    assert isinstance(result, ClickEvent), result
    assert (result.event_id, result.user_id, result.ts) == (
        event["event_id"], event["user_id"], event["ts"])


@FUZZ
@given(bad_items)
def test_every_broken_item_is_rejected_with_a_reason(kind_raw: tuple[str, bytes]) -> None:
    kind, raw = kind_raw
    result = parse_item(raw)
    assert isinstance(result, Rejection), (kind, raw[:200])
    assert result.reason


@FUZZ
@given(valid_items)
def test_every_valid_item_is_accepted(item: dict) -> None:
    result = parse_item(dumps(item))
    assert isinstance(result, CatalogItem), result
    assert result.item_id == item["item_id"]


@settings(max_examples=40, deadline=None)
@given(oversized(valid_clicks, "context"))
def test_oversized_clicks_are_rejected(raw: bytes) -> None:
    result = parse_click(raw, now_ms=NOW)
    assert isinstance(result, Rejection) and "exceeds" in result.reason


@FUZZ
@given(
    st.none() | st.binary(max_size=4_000) | st.text(max_size=2_000).map(str.encode)
    | st.integers(0, 900 * 1024).map(lambda n: b"\xf0\x9f\x98\x80" * (n // 4)),
    st.text(max_size=3_000),
    st.text(min_size=1, max_size=249),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**63 - 1),
)
def test_dead_letters_never_raise_and_always_fit(
    raw: bytes | None, reason: str, topic: str, partition: int, offset: int
) -> None:
    letter = dead_letter(raw, reason, topic=topic, partition=partition, offset=offset)
    assert len(json.dumps(letter).encode()) <= MAX_DEAD_LETTER_BYTES
    assert letter["reason"] and letter["source"]["offset"] == offset
    if raw is None:
        assert letter["original"] is None and letter["original_bytes"] == 0
        return
    assert letter["original_bytes"] == len(raw)
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert letter["original_truncated"] == (len(raw) > DEAD_LETTER_PREFIX_BYTES)
    if letter["original_encoding"] == "base64":
        prefix = base64.b64decode(letter["original"])
        assert prefix == raw[:DEAD_LETTER_PREFIX_BYTES]
    else:  # the text of the prefix, a character cut at the boundary dropped
        prefix = letter["original"].encode()
        assert raw[:DEAD_LETTER_PREFIX_BYTES].startswith(prefix)
        assert len(prefix) > DEAD_LETTER_PREFIX_BYTES - 4 or prefix == raw


def test_a_900_kb_click_gives_a_small_dead_letter() -> None:
    raw = json.dumps({"event_id": "e", "context": {"blob": "\u00e9" * 450_000}},
                     ensure_ascii=False).encode()
    assert len(raw) > 900_000
    reason = parse_click(raw, now_ms=NOW)
    assert isinstance(reason, Rejection)
    letter = dead_letter(raw, reason.reason, topic="clicks", partition=0, offset=1)
    assert len(json.dumps(letter).encode()) < 8 * 1024
    assert letter["original_bytes"] == len(raw) and letter["original_truncated"]


def test_a_5001_digit_integer_is_a_rejection_not_a_crash() -> None:
    for field in ("ts", "rating", "dwell_ms", "context", "event_id"):
        raw = (b'{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":1,"'
               + field.encode() + b'":' + b"9" * 5001 + b"}")
        result = parse_click(raw, now_ms=NOW)
        assert isinstance(result, Rejection) and "digits" in result.reason, field
    item = parse_item(b'{"item_id":"i","vector":[' + b"1" * 5001 + b"]}")
    assert isinstance(item, Rejection)


def test_dead_letter_keys_are_bounded() -> None:
    assert dead_letter_key(b"u1") == b"u1"
    assert dead_letter_key(None) is None
    assert dead_letter_key(b"k" * 10_000) is None
