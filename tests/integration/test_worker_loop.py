"""The loop on real servers: tansu (Kafka protocol) + Redis + a real `streamrec worker`."""

from __future__ import annotations

import json

import redis

from streamrec.core.config import Settings
from streams.malformed import MALFORMED_KINDS, mix_malformed
from tests.support import collect, event_record, produce

T0 = 1_700_000_000_000


def events(n: int, users: int = 5, start: int = 0) -> list[dict]:
    return [
        {"event_id": f"ev-{i}", "user_id": f"user-{i % users}", "item_id": f"item-{(i * 7) % 23}",
         "type": "click", "ts": T0 + i * 1000}
        for i in range(start, start + n)
    ]


def test_valid_events_get_recommendations_for_the_right_user(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    start_worker()
    produce(s, s.items_topic, [(b"item-3", json.dumps(
        {"item_id": "item-3", "title": "Three", "categories": ["x"]}).encode())])
    sent = events(60)
    produce(s, s.clicks_topic, [event_record(e) for e in sent])
    out = collect(s, [s.recommendations_topic],
                  lambda o: len({r["event_id"] for r in o[s.recommendations_topic]}) >= 60)
    recs = {r["event_id"]: r for r in out[s.recommendations_topic]}
    assert set(recs) == {e["event_id"] for e in sent}
    for e in sent:
        rec = recs[e["event_id"]]
        assert rec["user_id"] == e["user_id"] == rec["_key"]
        assert rec["model"] == "fallback"
        consumed = {x["item_id"] for x in sent if x["user_id"] == e["user_id"]
                    and x["ts"] <= e["ts"]}
        assert not consumed & {i["item_id"] for i in rec["items"]}
        assert all(i["reason"] for i in rec["items"])
    # state and the latest list are mirrored to Redis with a TTL
    r = redis.Redis.from_url(s.redis_url)
    state = json.loads(r.get("user:user-1:state"))
    assert state["recent_items"][-1] == sent[-4]["item_id"]
    assert r.ttl("user:user-1:recs") > 0
    assert json.loads(r.get("user:user-1:recs"))["user_id"] == "user-1"


def test_malformed_records_reach_the_dlq_while_the_worker_keeps_serving(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    worker = start_worker()
    good = events(300, users=11)
    mixed = mix_malformed(good, share=0.3)
    bad = [m for m in mixed if not m[2]]
    assert len(bad) >= 100 and {m[3] for m in bad} == set(MALFORMED_KINDS)
    produce(s, s.clicks_topic, [(k, v) for k, v, _, _ in mixed])
    out = collect(
        s, [s.recommendations_topic, s.dlq_topic],
        lambda o: len(o[s.dlq_topic]) >= len(bad)
        and len({r["event_id"] for r in o[s.recommendations_topic]}) >= len(good),
        timeout_s=90,
    )
    dlq = out[s.dlq_topic]
    assert len(dlq) == len(bad)
    assert all(d["reason"] and d["source"]["topic"] == s.clicks_topic for d in dlq)
    originals = sorted(d["original"] for d in dlq if d["original_encoding"] == "utf-8")
    assert len(originals) == len(bad) - sum(m[3] == "not_utf8" for m in bad)
    assert {r["event_id"] for r in out[s.recommendations_topic]} == {e["event_id"] for e in good}
    assert worker.proc.poll() is None, worker.log_tail()


def test_a_repeated_event_id_is_answered_without_a_second_state_update(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    start_worker()
    first = events(3, users=1)
    produce(s, s.clicks_topic, [event_record(e) for e in first + [first[1]]])
    out = collect(s, [s.recommendations_topic],
                  lambda o: len(o[s.recommendations_topic]) >= 4)
    assert [r["event_id"] for r in out[s.recommendations_topic]].count("ev-1") == 2
    state = json.loads(redis.Redis.from_url(s.redis_url).get("user:user-0:state"))
    assert state["counts"] == {"click": 3}
