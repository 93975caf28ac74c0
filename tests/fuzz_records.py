"""Hypothesis strategies for fuzzing the worker: valid and broken ``clicks`` and ``items``.

Each broken kind is unambiguously invalid under the event contract (whatever the recursion
limit of the process reading it), so a test knows where each record must end up: a valid one
answered (clicks) or in the catalogue (items), a broken one in the dead-letter topic.
:func:`draw` turns a strategy into a deterministic list (a seeded ``@given`` run that collects
what it draws), for tests that send thousands of records through a real broker.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from streamrec.core.events import EVENT_TYPES

T = TypeVar("T")
T0 = 1_700_000_000_000
DAY = 86_400_000
# ids with spaces, tabs, NUL, accents, CJK and emoji: valid, and awkward for every encoder
USERS = tuple(f"u{i}" for i in range(24)) + ("ü-ß", "用户-7", "😀 smile", "tab\tid", "nul\x00id")
ITEMS = tuple(f"it{i}" for i in range(40)) + ("é-item", "🎬", "slash/item")
ID_FIELDS = ("event_id", "user_id", "item_id")
CLICK_REQUIRED = (*ID_FIELDS, "type", "ts")

json_scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=4,
)
not_strings = json_values.filter(lambda v: not isinstance(v, str))
contexts = st.dictionaries(st.text(max_size=8), json_scalars | st.lists(json_scalars, max_size=3),
                           max_size=3)


def dumps(obj: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode()


def with_literal(obj: dict[str, Any], field: str, literal: str) -> bytes:
    """``obj`` as JSON with ``field`` set to a raw JSON text (NaN, a 5,001-digit integer...)."""
    return json.dumps({**obj, field: "@@LITERAL@@"}).replace('"@@LITERAL@@"', literal).encode()


# --- clicks ----------------------------------------------------------------------------------
valid_clicks: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=12).map(lambda s: "e" + s),
        "user_id": st.sampled_from(USERS),
        "item_id": st.sampled_from(ITEMS),
        "type": st.sampled_from(sorted(EVENT_TYPES)),
        "ts": st.integers(T0, T0 + 30 * DAY) | st.integers(0, T0),
    },
    optional={
        "rating": st.floats(0, 5) | st.integers(0, 5),
        "dwell_ms": st.integers(0, 2**53 - 1),
        "session_id": st.text(max_size=40),
        "context": contexts,
        "unknown_extra_field": json_values,
    },
)


# what the broken kinds break: a valid click with its required fields only (cheaper to draw)
base_clicks: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "event_id": st.text(max_size=6).map(lambda s: "e" + s),
        "user_id": st.sampled_from(USERS),
        "item_id": st.sampled_from(ITEMS),
        "type": st.sampled_from(sorted(EVENT_TYPES)),
        "ts": st.integers(0, T0 + 30 * DAY),
    }
)


def _field_set(field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda e, v: dumps({**e, field: v}), base_clicks, values)


def _literal_in(fields: tuple[str, ...], literals: st.SearchStrategy[str]
                ) -> st.SearchStrategy[bytes]:
    return st.builds(lambda e, f, lit: with_literal(e, f, lit), base_clicks,
                     st.sampled_from(fields), literals)


huge_int_literals = st.builds(lambda n, sign: sign + "9" * n, st.integers(4301, 20_000),
                              st.sampled_from(["", "-"]))
non_finite_literals = st.sampled_from(["NaN", "Infinity", "-Infinity"])
lone_surrogates = st.sampled_from(['"\\ud800"', '"x\\udfff"', '"\\udbff y"', '"\\ude00\\ud800"'])
utf8_breakers = st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                 b"\x80"])
# refused at any depth: a top-level array, an object without the fields, or a ts of arrays
_deep = st.integers(1_100, 5_000).map(lambda n: "[" * n + "]" * n)
_deep_object = st.integers(1_100, 3_000).map(lambda n: '{"a":' * n + "1" + "}" * n)


def _cut(raw: bytes, share: float) -> bytes:
    return raw[: min(len(raw) - 1, int(len(raw) * share))]


def _insert(raw: bytes, share: float, junk: bytes) -> bytes:
    at = int(len(raw) * share)
    return raw[:at] + junk + raw[at:]


BAD_CLICKS: dict[str, st.SearchStrategy[bytes]] = {
    "binary": st.binary(max_size=200),
    "garbage_text": st.text(max_size=60).map(lambda s: s.encode("utf-8")),
    "truncated_json": st.builds(_cut, base_clicks.map(dumps), st.floats(0, 1)),
    "not_an_object": json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),
    "missing_field": st.builds(lambda e, f: dumps({k: v for k, v in e.items() if k != f}),
                               base_clicks, st.sampled_from(CLICK_REQUIRED)),
    "null_field": st.builds(lambda e, f: dumps({**e, f: None}), base_clicks,
                            st.sampled_from(CLICK_REQUIRED)),
    "id_not_a_string": st.builds(lambda e, f, v: dumps({**e, f: v}), base_clicks,
                                 st.sampled_from(ID_FIELDS), not_strings.filter(
                                     lambda v: v is not None)),
    "blank_id": st.builds(lambda e, f, v: dumps({**e, f: v}, False), base_clicks,
                          st.sampled_from(ID_FIELDS), st.text(" \t\n\r\u3000\u00a0\u2003",
                                                              max_size=4)),
    "overlong_id": st.builds(lambda e, f, n: dumps({**e, f: "i" * n}), base_clicks,
                             st.sampled_from(ID_FIELDS), st.integers(129, 2_000)),
    "unknown_type": _field_set("type", st.text(max_size=20).filter(lambda t: t not in EVENT_TYPES)
                               | not_strings.filter(lambda v: v is not None)),
    "absurd_ts": _field_set("ts", st.integers(max_value=-1) | st.integers(min_value=10**14)
                            | st.floats(allow_nan=False, allow_infinity=False) | st.text()
                            | st.booleans() | st.lists(st.integers(), max_size=2)),
    "bad_rating": _field_set("rating", st.text(max_size=5) | st.booleans()
                             | st.lists(st.integers(), max_size=2)
                             | st.integers(min_value=2**53) | st.integers(max_value=-(2**53))),
    "bad_dwell": _field_set("dwell_ms", st.integers(max_value=-1) | st.integers(min_value=2**53)
                            | st.floats(allow_nan=False, allow_infinity=False) | st.text()
                            | st.booleans()),
    "bad_session": _field_set("session_id", st.integers() | st.booleans() | st.lists(st.text())
                              | st.integers(129, 500).map(lambda n: "s" * n)),
    "bad_context": _field_set("context", json_scalars.filter(lambda v: v is not None)
                              | st.lists(json_scalars, max_size=3)),
    "huge_integer": _literal_in(("ts", "rating", "dwell_ms", "context", "event_id"),
                                huge_int_literals
                                | huge_int_literals.map(lambda d: f'{{"n":{d}}}')),
    "non_finite_number": _literal_in(("ts", "rating", "dwell_ms", "context"),
                                     non_finite_literals | non_finite_literals.map(
                                         lambda c: f'{{"x":[1,{c}]}}'))
    | _literal_in(("ts", "rating", "dwell_ms"), st.sampled_from(["1e400", "-1e400"])),
    "lone_surrogate": _literal_in((*ID_FIELDS, "type", "session_id", "context"),
                                  lone_surrogates | lone_surrogates.map(
                                      lambda s: f'{{{s}: 1}}')),
    "invalid_utf8": st.builds(_insert, base_clicks.map(lambda e: dumps(e, False)),
                              st.floats(0, 1), utf8_breakers),
    "utf8_bom": base_clicks.map(lambda e: b"\xef\xbb\xbf" + dumps(e)),
    "utf16": base_clicks.map(lambda e: json.dumps(e).encode("utf-16")),
    "deeply_nested": _deep.map(str.encode) | _deep_object.map(str.encode)
    | st.builds(lambda e, d: with_literal(e, "ts", d), base_clicks, _deep),
}
# "1e400" as a rating is infinity, as a ts or dwell a fraction: refused; in a context it is a
# harmless float, which is why the non-finite kind above targets fields, not free-form objects
bad_clicks: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    *(strategy.map(lambda raw, kind=kind: (kind, raw)) for kind, strategy in BAD_CLICKS.items())
)


def oversized(valid: st.SearchStrategy[dict[str, Any]], field: str, smallest: int = 65_537,
              largest: int = 900 * 1024) -> st.SearchStrategy[bytes]:
    """Valid records padded to ``smallest``..``largest`` bytes (past the 64 KB limit) in a
    free-form ``field``."""
    return st.builds(lambda e, n: dumps({**e, field: "x" * n}), valid,
                     st.integers(smallest, largest))


# --- items -----------------------------------------------------------------------------------
valid_items: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"item_id": st.sampled_from(ITEMS)},
    optional={
        "title": st.text(max_size=30) | st.integers(1_000, 9_000).map(lambda n: "é" * n),
        "text": st.text(max_size=60),
        "categories": st.lists(st.text(max_size=10), max_size=4),
        "vector": st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32)
                           | st.integers(-(2**53 - 1), 2**53 - 1), max_size=8),
        "active": st.booleans(),
        "unknown_extra_field": json_values,
    },
)


def _item_set(field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.builds(lambda e, v: dumps({**e, field: v}), valid_items, values)


BAD_ITEMS: dict[str, st.SearchStrategy[bytes]] = {
    "binary": st.binary(max_size=200),
    "truncated_json": st.builds(_cut, valid_items.map(dumps), st.floats(0, 1)),
    "not_an_object": json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),
    "missing_item_id": valid_items.map(lambda e: dumps({k: v for k, v in e.items()
                                                        if k != "item_id"})),
    "bad_item_id": _item_set("item_id", not_strings | st.text(" \t", max_size=3)
                             | st.integers(129, 1_000).map(lambda n: "i" * n)),
    "bad_active": _item_set("active", json_values.filter(
        lambda v: v is not None and not isinstance(v, bool)) | st.none()),
    "bad_title": _item_set("title", not_strings),
    "bad_categories": _item_set("categories", st.text(min_size=1) | st.integers()
                                | st.lists(not_strings, min_size=1, max_size=3)),
    "bad_vector": _item_set("vector", st.text() | st.lists(st.text(), min_size=1, max_size=3)
                            | st.lists(st.integers(min_value=2**53), min_size=1, max_size=3)
                            | st.lists(st.booleans(), min_size=1, max_size=3)),
    "huge_integer": st.builds(lambda e, d: with_literal(e, "vector", f"[{d}]"), valid_items,
                              huge_int_literals),
    "non_finite_number": st.builds(lambda e, c: with_literal(e, "vector", f"[1, {c}]"),
                                   valid_items, non_finite_literals | st.just("1e400")),
    "lone_surrogate": st.builds(lambda e, f, s: with_literal(e, f, s), valid_items,
                                st.sampled_from(["item_id", "title", "text"]), lone_surrogates),
    "invalid_utf8": st.builds(_insert, valid_items.map(lambda e: dumps(e, False)),
                              st.floats(0, 1), utf8_breakers),
    "deeply_nested": _deep.map(str.encode)
    | st.builds(lambda e, d: with_literal(e, "categories", d), valid_items, _deep),
}
bad_items: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    *(strategy.map(lambda raw, kind=kind: (kind, raw)) for kind, strategy in BAD_ITEMS.items())
)
bad_keys = st.none() | st.binary(max_size=40) | st.integers(300, 5_000).map(lambda n: b"k" * n)


# --- drawing thousands deterministically ------------------------------------------------------
def draw(strategy: st.SearchStrategy[T], n: int, *, seed_value: int, per_example: int = 20
         ) -> list[T]:
    """``n`` values of ``strategy``, the same for the same seed and Hypothesis version.

    A seeded ``@given`` run draws lists of ``per_example`` values and collects them; nothing
    is shrunk or replayed from a database, so the run is pure generation.
    """
    drawn: list[T] = []

    @settings(max_examples=n // per_example + 1, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @seed(seed_value)
    @given(st.lists(strategy, min_size=per_example, max_size=per_example))
    def collect(values: list[T]) -> None:
        drawn.extend(values)

    while len(drawn) < n:
        collect()
    return drawn[:n]

