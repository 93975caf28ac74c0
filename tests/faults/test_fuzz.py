"""Fuzz: thousands of random and broken records through the real broker to a real worker.

The records come from Hypothesis strategies (``tests/fuzz_records.py``), drawn with a fixed
seed: binary, truncated and deeply nested JSON, integers past Python's digit limit, NaN,
numbers out of every range, wrong types, nulls, lone surrogates, invalid UTF-8, absurd
timestamps, oversized records up to 900 KB, huge keys; interleaved with valid clicks and items
(unicode ids included) and with repeats of valid clicks. Every broken record must reach the
dead-letter topic with a reason (matched by the SHA-256 its dead letter carries), every valid
click must be answered, repeats must change no state, every valid item must be in the
catalogue, and the worker must never stop (same PID, alive and ready at the end).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
import redis
from hypothesis import strategies as st

from streamrec.core.config import Settings
from streamrec.core.events import MAX_DEAD_LETTER_BYTES
from tests.fuzz_records import (
    USERS,
    bad_clicks,
    bad_items,
    bad_keys,
    draw,
    dumps,
    oversized,
    valid_clicks,
    valid_items,
)
from tests.support import collect, produce, wait_until, wait_worker_ready

pytestmark = pytest.mark.slow

SEED = 12
BAD_CLICKS, OVERSIZED_CLICKS, VALID_CLICKS, REPEATS = 9_979, 20, 2_000, 300
BAD_ITEMS, OVERSIZED_ITEMS, VALID_ITEMS = 1_995, 5, 500
Record = tuple[bytes | None, bytes]


def interleave(rng: random.Random, *groups: list[Record]) -> list[Record]:
    out = [r for group in groups for r in group]
    rng.shuffle(out)
    return out


def fuzzed_clicks(rng: random.Random) -> tuple[list[Record], list[Record], list[dict[str, Any]]]:
    """(records in sending order, the broken ones, the distinct valid events)."""
    bad = [(key, raw) for key, (_kind, raw) in
           draw(st.tuples(bad_keys, bad_clicks), BAD_CLICKS, seed_value=SEED)]
    bad += [(None, raw) for raw in
            draw(oversized(valid_clicks, "context", largest=200_000), OVERSIZED_CLICKS,
                 seed_value=SEED, per_example=1)]
    bad += [(None, raw) for raw in  # the 900 KB click
            draw(oversized(valid_clicks, "context", smallest=900_000), 1, seed_value=SEED,
                 per_example=1)]
    # distinct event ids; users in turn, so that each user's repeats fall within the last
    # `dedup_capacity` (256) event ids a state remembers
    events = [{**e, "event_id": f"fz{i}-{e['event_id']}", "user_id": USERS[i % len(USERS)]}
              for i, e in enumerate(draw(valid_clicks, VALID_CLICKS, seed_value=SEED))]
    valid = [(e["user_id"].encode(), dumps(e, ascii_only=i % 2 == 0))
             for i, e in enumerate(events)]
    # each record at a random place; each repeat somewhere after its first sending
    placed = [(rng.random(), record) for record in [*bad, *valid]]
    placed += [(rng.uniform(at, 1.0), record)
               for at, record in rng.sample(placed[len(bad):], REPEATS)]
    records = [record for _, record in sorted(placed, key=lambda p: p[0])]
    return records, bad, events


def fuzzed_items(rng: random.Random) -> tuple[list[Record], list[Record], list[dict[str, Any]]]:
    bad = [(key, raw) for key, (_kind, raw) in
           draw(st.tuples(bad_keys, bad_items), BAD_ITEMS, seed_value=SEED)]
    bad += [(None, raw) for raw in
            draw(oversized(valid_items, "text", largest=200_000), OVERSIZED_ITEMS,
                 seed_value=SEED, per_example=1)]
    items = draw(valid_items, VALID_ITEMS, seed_value=SEED)
    by_raw = {dumps(item): item for item in items}
    valid = [(item["item_id"].encode(), raw) for raw, item in by_raw.items()]
    records = interleave(rng, bad, valid)
    # the valid items in sending order (the catalogue keeps the last of each id)
    return records, bad, [by_raw[raw] for _, raw in records if raw in by_raw]


def sha256s(topic: str, records: list[Record]) -> Counter[tuple[str, str]]:
    return Counter((topic, hashlib.sha256(raw).hexdigest()) for _, raw in records)


def test_fuzzed_records_reach_the_dlq_and_the_worker_never_stops(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    worker = start_worker(wait_ready=False)  # it joins its group while the records are drawn
    rng = random.Random(SEED)
    click_records, bad_click_records, events = fuzzed_clicks(rng)
    item_records, bad_item_records, items = fuzzed_items(rng)
    wait_worker_ready(s.redis.url, worker)
    assert len(bad_click_records) + len(events) + REPEATS >= 10_000
    produce(s, s.kafka.items_topic, item_records)
    produce(s, s.kafka.clicks_topic, click_records)

    recs_topic, dlq_topic = s.kafka.recommendations_topic, s.kafka.dlq_topic
    valid_ids = {e["event_id"] for e in events}
    n_bad = len(bad_click_records) + len(bad_item_records)

    def done(out: dict[str, list[dict[str, Any]]]) -> bool:
        return (len(out[dlq_topic]) >= n_bad
                and valid_ids <= {r["event_id"] for r in out[recs_topic]})

    def progress(out: dict[str, list[dict[str, Any]]]) -> str:
        answered = {r["event_id"] for r in out[recs_topic]}
        return (f"dead letters {len(out[dlq_topic])}/{n_bad}, valid clicks answered "
                f"{len(valid_ids & answered)}/{len(valid_ids)}\n{worker.log_tail()}")

    out = collect(s, [recs_topic, dlq_topic], done, timeout_s=180,
                  what="a dead letter for each broken record and an answer to each valid click",
                  diagnose=progress)

    # every broken record, and nothing else, is dead-lettered once, with a reason
    dlq = out[dlq_topic]
    expected = (sha256s(s.kafka.clicks_topic, bad_click_records)
                + sha256s(s.kafka.items_topic, bad_item_records))
    got = Counter((d["source"]["topic"], d["original_sha256"]) for d in dlq)
    assert got == expected, (
        f"missing {list((expected - got).items())[:5]}, unexpected {list(got - expected)[:5]}")
    assert all(d["reason"] for d in dlq)
    assert max(len(json.dumps(d)) for d in dlq) <= MAX_DEAD_LETTER_BYTES
    assert max(d["original_bytes"] for d in dlq) > 800 * 1024  # oversized ones included
    # every distinct valid click is answered (repeats may be answered again)
    answered = {r["event_id"] for r in out[recs_topic]}
    assert answered == valid_ids

    client = redis.Redis.from_url(s.redis.url)
    try:
        # repeats change no state: each user's mirrored counts cover each distinct event once
        per_user = Counter(e["user_id"] for e in events)
        seen: dict[str, Any] = {}

        def counts_exact() -> bool:
            states = {u: json.loads(client.get(f"user:{u}:state") or "{}") for u in per_user}
            seen["counts"] = {u: sum(st_.get("counts", {}).values()) for u, st_ in states.items()}
            return seen["counts"] == dict(per_user)

        wait_until(counts_exact, 30, "each user's mirrored event count equal to the distinct "
                   "valid clicks sent", diagnose=lambda: f"{seen.get('counts')}\n{per_user}")

        # every valid item is in the shared catalogue, as its last record says
        last: dict[str, dict[str, Any]] = {}
        for item in items:
            last[item["item_id"]] = item
        catalogue: dict[str, Any] = defaultdict(dict)

        def catalogue_matches() -> bool:
            inactive = {m.decode() for m in client.smembers("items:inactive")}
            for item_id in last:
                title = client.hget(f"item:{item_id}", "title")
                catalogue[item_id] = (title.decode() if title is not None else None,
                                      item_id in inactive)
            return all(catalogue[i] == (item.get("title", ""), not item.get("active", True))
                       for i, item in last.items())

        def mismatches() -> str:
            return str([(i, (c[0] or "")[:20], c[1], last[i].get("title", "")[:20],
                         last[i].get("active", True)) for i, c in catalogue.items()
                        if c != (last[i].get("title", ""), not last[i].get("active", True))])

        wait_until(catalogue_matches, 30, "every valid item in the catalogue as last sent",
                   diagnose=mismatches)
    finally:
        client.close()

    # the worker never stopped
    assert worker.proc.poll() is None, worker.log_tail()
    assert "crashed" not in worker.log_path.read_text(errors="replace").lower()
