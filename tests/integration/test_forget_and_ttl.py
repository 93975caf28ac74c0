"""`streamrec forget` against a real worker, and a TTL on every key the worker writes to Redis.

Phase 1: clicks of two users (and a catalogue item, a deactivation) through a real worker; then
every key in Redis carries a TTL. Phase 2: `forget u`: u's table entry is tombstoned in the
changelog, u's Redis keys are gone, a new click of u starts from an empty state, and the
trainer's reader of `clicks` yields none of u's clicks from before the request (only the new
one), while the other user's clicks are untouched.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from streamrec.cli.forget import forget_users
from streamrec.core.config import Settings
from tests.support import (
    collect,
    event_record,
    produce,
    start_reader,
    wait_until,
    wait_until_async,
)

T0 = 1_700_000_000_000
FORGOTTEN, KEPT = "user-forget-me", "user-keep-me"


def click(i: int, user: str, item: str) -> dict:
    return {"event_id": f"ev-{user}-{i}", "user_id": user, "item_id": item, "type": "click",
            "ts": T0 + i * 1000}


def answered(s: Settings, event_ids: set[str]) -> None:
    topic = s.kafka.recommendations_topic
    collect(s, [topic], lambda o: event_ids <= {r["event_id"] for r in o[topic]},
            what=f"an answer to each of {len(event_ids)} clicks")


def changelog_tombstone(s: Settings, user: str) -> bool:
    """Whether the user-state table's changelog holds a tombstone (None value) for ``user``."""
    topic = f"{s.worker.app_id}-user-state-changelog"

    async def run() -> bool:
        consumer = await start_reader(s, [topic])
        found: list[bool] = []

        async def seen() -> bool:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batches.values():
                found.extend(m.key == user.encode() and m.value is None for m in messages)
            return any(found)

        try:
            return await wait_until_async(seen, 30, f"a changelog tombstone for {user}")
        finally:
            await consumer.stop()

    return asyncio.run(run())


@pytest.mark.slow  # ~30 s: a worker, two phases
def test_every_redis_key_has_a_ttl_and_forget_erases_a_user(
    stream_settings: Settings, start_worker
) -> None:
    from training.data import read_clicks_from_kafka

    s = stream_settings
    start_worker()
    r = redis.Redis.from_url(s.redis.url)
    produce(s, s.kafka.items_topic, [
        (b"item-1", json.dumps({"item_id": "item-1", "title": "One"}).encode()),
        (b"item-9", json.dumps({"item_id": "item-9", "active": False}).encode()),
    ])
    before = [click(i, user, f"item-{i % 5}") for i in range(12) for user in (FORGOTTEN, KEPT)]
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in before])
    answered(s, {e["event_id"] for e in before})
    wait_until(lambda: r.exists(f"user:{FORGOTTEN}:state") and r.exists("items:inactive"), 20,
               "the user mirror and the catalogue in Redis")

    # phase 1: no key without a TTL (TTL -1 = no expiry; -2 = gone meanwhile)
    keys = sorted(k.decode() for k in r.scan_iter(count=1000))
    families = {k.split(":")[0] for k in keys}
    assert {"user", "covis", "trend", "item", "items", "workers"} <= families, keys
    without_ttl = [k for k in keys if r.ttl(k) == -1]
    assert without_ttl == [], f"keys without a TTL: {without_ttl}"

    # phase 2: forget one user; a click of theirs in flight before the request is erased too
    in_flight = click(20, FORGOTTEN, "item-2")
    produce(s, s.kafka.clicks_topic, [event_record(in_flight)])
    report = asyncio.run(forget_users(s, [FORGOTTEN]))
    assert [row["user_id"] for row in report["requests"]] == [FORGOTTEN]
    assert changelog_tombstone(s, FORGOTTEN)
    wait_until(lambda: not list(r.scan_iter(match=f"user:{FORGOTTEN}:*")), 20,
               f"no Redis key of {FORGOTTEN}")
    assert r.exists(f"user:{KEPT}:state")

    after = click(30, FORGOTTEN, "item-4")
    produce(s, s.kafka.clicks_topic, [event_record(after)])
    answered(s, {after["event_id"], in_flight["event_id"]})

    def fresh_state() -> dict:
        state = json.loads(r.get(f"user:{FORGOTTEN}:state") or "{}")
        return state if state.get("recent_items") == ["item-4"] else {}

    state = wait_until(fresh_state, 20, f"{FORGOTTEN}'s new click starting from empty state",
                       diagnose=lambda: str(r.get(f"user:{FORGOTTEN}:state")))
    assert sum(state["counts"].values()) == 1

    # the trainer's reader: none of the forgotten user's clicks before the request
    data = read_clicks_from_kafka(s.require_kafka(), s.kafka.clicks_topic)
    rows = list(data)
    assert [(u, i) for u, i, _ in rows if u == FORGOTTEN] == [(FORGOTTEN, "item-4")]
    assert sum(1 for u, _, _ in rows if u == KEPT) == 12
    r.close()
