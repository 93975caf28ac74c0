from __future__ import annotations

import base64
import json

import pytest

from streamrec.core.events import ClickEvent, Rejection, dead_letter, parse_click, parse_item
from streams.malformed import MALFORMED_KINDS, malformed_record, mix_malformed

NOW = 1_700_000_000_000
VALID = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "click", "ts": NOW}


def test_valid_event_parses_with_optional_fields() -> None:
    raw = json.dumps({**VALID, "rating": 4, "dwell_ms": 1200, "session_id": "s",
                      "context": {"device": "tv"}}).encode()
    event = parse_click(raw, now_ms=NOW)
    assert isinstance(event, ClickEvent)
    assert (event.user_id, event.item_id, event.rating, event.context) == (
        "u1", "i1", 4.0, {"device": "tv"})


@pytest.mark.parametrize("kind", sorted(MALFORMED_KINDS))
def test_every_malformed_kind_is_rejected_with_a_reason(kind: str) -> None:
    result = parse_click(malformed_record(dict(VALID), kind), now_ms=NOW)
    assert isinstance(result, Rejection), kind
    assert len(result.reason) > 8


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "malformed JSON"),
        (b"[1]", "got array"),
        (b"null", "got null"),
        (json.dumps({**VALID, "type": "teleport"}).encode(), "unknown event type"),
        (json.dumps({**VALID, "ts": NOW + 10 * 86_400_000}).encode(), "in the future"),
        (json.dumps({**VALID, "user_id": 5}).encode(), "'user_id' must be a string"),
        (json.dumps({**VALID, "ts": "soon"}).encode(), "'ts' must be an integer"),
        (b"x" * 70_000, "exceeds the 65536-byte limit"),
        (None, "null value"),
    ],
)
def test_reasons_say_what_is_wrong(raw: bytes | None, fragment: str) -> None:
    result = parse_click(raw, now_ms=NOW)
    assert isinstance(result, Rejection)
    assert fragment in result.reason


def test_dead_letter_keeps_original_bytes_and_origin() -> None:
    text = dead_letter(b'{"a":', "malformed JSON", topic="clicks", partition=2, offset=9)
    assert text["original"] == '{"a":' and text["original_encoding"] == "utf-8"
    assert text["source"] == {"topic": "clicks", "partition": 2, "offset": 9}
    binary = dead_letter(b"\xff\x00", "not UTF-8", topic="clicks", partition=0, offset=1)
    assert binary["original_encoding"] == "base64"
    assert base64.b64decode(binary["original"]) == b"\xff\x00"


def test_items_parse_and_deactivation() -> None:
    item = parse_item(b'{"item_id": "i1", "title": "T", "categories": ["a"], "vector": [1, 2]}')
    assert not isinstance(item, Rejection)
    assert item.vector == (1.0, 2.0) and item.active
    off = parse_item(b'{"item_id": "i1", "active": false}')
    assert not isinstance(off, Rejection) and not off.active
    assert isinstance(parse_item(b'{"item_id": "i1", "categories": "a"}'), Rejection)


def test_mix_malformed_covers_every_kind() -> None:
    events = [{**VALID, "event_id": f"e{i}", "user_id": f"u{i % 7}"} for i in range(3000)]
    mixed = mix_malformed(events, share=0.04)
    bad = [m for m in mixed if not m[2]]
    assert len(mixed) - len(bad) == 3000
    assert {m[3] for m in bad} == set(MALFORMED_KINDS)
    assert all(isinstance(parse_click(m[1], now_ms=NOW), Rejection) for m in bad)
