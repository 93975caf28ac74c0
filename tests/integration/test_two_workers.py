"""Two workers share the clicks partitions; shared signals (Redis) are seen by both."""

from __future__ import annotations

import json

import redis

from streamrec.core.config import Settings
from streams.runtime import WORKERS_READY_KEY
from tests.support import collect, event_record, produce, wait_until, wait_worker_ready

T0 = 1_700_000_000_000


def test_two_workers_split_users_and_share_co_visitation(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    first = start_worker(wait_ready=False)
    start_worker()
    wait_worker_ready(s.redis.url, first)

    # phase 1: ten users each watch "x" then "y" (a co-visitation pair)
    teach = []
    for u in range(10):
        teach.append({"event_id": f"t{u}a", "user_id": f"teacher-{u}", "item_id": "x",
                      "type": "click", "ts": T0 + u})
        teach.append({"event_id": f"t{u}b", "user_id": f"teacher-{u}", "item_id": "y",
                      "type": "click", "ts": T0 + u + 1000})
    topic = s.kafka.recommendations_topic
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in teach])
    collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= len(teach),
            what=f"an answer to each of the {len(teach)} teaching clicks")

    # phase 2: forty other users, spread over every partition, watch "x"
    learners = [{"event_id": f"l{u}", "user_id": f"learner-{u}", "item_id": "x",
                 "type": "click", "ts": T0 + 5000 + u} for u in range(40)]
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in learners])
    out = collect(s, [topic],
                  lambda o: len({r["event_id"] for r in o[topic]}) >= len(teach) + len(learners),
                  what=f"an answer to each of the {len(learners)} learners' clicks too")
    recs = {r["event_id"]: r for r in out[topic]}
    assert set(recs) == {e["event_id"] for e in teach + learners}
    for e in learners:
        top = recs[e["event_id"]]["items"][0]
        assert top["item_id"] == "y", recs[e["event_id"]]
        assert top["reason"] == "often watched after x"

    # both workers served a share of the users (stats are published every 5 s)
    client = redis.Redis.from_url(s.redis.url)

    def published_stats() -> list[dict]:
        return [json.loads(v) for v in client.hgetall(WORKERS_READY_KEY).values()]

    def stats_covering_every_event() -> list[dict] | None:
        stats = published_stats()
        handled = sum(x["events"] for x in stats)
        return stats if len(stats) == 2 and handled >= len(teach) + len(learners) else None

    stats = wait_until(stats_covering_every_event, 20,
                       "both workers' published stats counting every event sent",
                       interval_s=0.5, diagnose=lambda: str(published_stats()))
    assert all(x["events"] > 0 for x in stats), stats
