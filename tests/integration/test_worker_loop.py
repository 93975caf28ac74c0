"""The loop on real servers: tansu (Kafka protocol) + Redis + a real `streamrec worker`."""

from __future__ import annotations

import json

import redis

from streamrec.core.config import Settings
from streams.malformed import MALFORMED_KINDS, mix_malformed
from tests.support import collect, event_record, produce, wait_until

T0 = 1_700_000_000_000


def events(n: int, users: int = 5, start: int = 0) -> list[dict]:
    return [
        {"event_id": f"ev-{i}", "user_id": f"user-{i % users}", "item_id": f"item-{(i * 7) % 23}",
         "type": "click", "ts": T0 + i * 1000}
        for i in range(start, start + n)
    ]


def mirrored(r: redis.Redis, key: str) -> dict:
    """A JSON mirror the worker wrote to Redis ({} while there is none)."""
    return json.loads(r.get(key) or "{}")


def test_valid_events_get_recommendations_for_the_right_user(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    start_worker()
    produce(s, s.kafka.items_topic, [(b"item-3", json.dumps(
        {"item_id": "item-3", "title": "Three", "categories": ["x"]}).encode())])
    sent = events(60)
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in sent])
    topic = s.kafka.recommendations_topic
    out = collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= len(sent),
                  what=f"an answer to each of the {len(sent)} clicks")
    recs = {r["event_id"]: r for r in out[topic]}
    assert set(recs) == {e["event_id"] for e in sent}
    for e in sent:
        rec = recs[e["event_id"]]
        assert rec["user_id"] == e["user_id"] == rec["_key"]
        assert rec["model"] == "fallback"
        consumed = {x["item_id"] for x in sent if x["user_id"] == e["user_id"]
                    and x["ts"] <= e["ts"]}
        assert not consumed & {i["item_id"] for i in rec["items"]}
        assert all(i["reason"] for i in rec["items"])
    # state and the latest list are mirrored to Redis with a TTL (beside the answer, not before)
    r = redis.Redis.from_url(s.redis.url)
    last_of_user_1 = sent[-4]
    wait_until(lambda: mirrored(r, "user:user-1:recs").get("event_id")
               == last_of_user_1["event_id"], 10, "user-1's last answer mirrored to Redis")
    state = mirrored(r, "user:user-1:state")
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
    produce(s, s.kafka.clicks_topic, [(k, v) for k, v, _, _ in mixed])
    out = collect(
        s, [s.kafka.recommendations_topic, s.kafka.dlq_topic],
        lambda o: len(o[s.kafka.dlq_topic]) >= len(bad)
        and len({r["event_id"] for r in o[s.kafka.recommendations_topic]}) >= len(good),
        timeout_s=90,
        what=f"{len(bad)} dead letters and an answer to each of the {len(good)} good clicks",
        diagnose=lambda _: worker.log_tail(),
    )
    dlq = out[s.kafka.dlq_topic]
    assert len(dlq) == len(bad)
    assert all(d["reason"] and d["source"]["topic"] == s.kafka.clicks_topic for d in dlq)
    originals = sorted(d["original"] for d in dlq if d["original_encoding"] == "utf-8")
    assert len(originals) == len(bad) - sum(m[3] == "not_utf8" for m in bad)
    answered = {r["event_id"] for r in out[s.kafka.recommendations_topic]}
    assert answered == {e["event_id"] for e in good}
    assert worker.proc.poll() is None, worker.log_tail()


def test_a_repeated_event_id_is_answered_without_a_second_state_update(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    start_worker()
    first, repeated = events(3, users=1), events(1, users=1, start=1)
    later = events(1, users=1, start=3)
    # the later click (same user, same partition) is handled after the repeat: once its answer
    # is mirrored, the state mirror includes whatever the repeat did
    sent = first + repeated + later
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in sent])
    topic = s.kafka.recommendations_topic
    out = collect(s, [topic], lambda o: len(o[topic]) >= len(sent),
                  what=f"{len(sent)} answers, one to the repeated click too")
    assert [r["event_id"] for r in out[topic]].count("ev-1") == 2
    r = redis.Redis.from_url(s.redis.url)
    wait_until(lambda: mirrored(r, "user:user-0:recs").get("event_id") == "ev-3", 10,
               "the answer to the click after the repeat mirrored to Redis")
    assert mirrored(r, "user:user-0:state")["counts"] == {"click": 4}
