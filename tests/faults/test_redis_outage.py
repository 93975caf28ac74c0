"""A Redis outage degrades the worker (its own signals), never stops it."""

from __future__ import annotations

import json
import time

import pytest
import redis

from streamrec.core.config import Settings
from streamrec.core.embedded import start_redis, stop_pid
from tests.support import collect, event_record, produce

T0 = 1_700_000_000_000


def batch(tag: str, n: int, start_ts: int) -> list[dict]:
    return [{"event_id": f"{tag}-{i}", "user_id": f"u{i % 6}", "item_id": f"it{i % 13}",
             "type": "click", "ts": start_ts + i * 1000} for i in range(n)]


def test_worker_keeps_answering_through_a_redis_outage(
    stream_env: dict[str, str], start_worker, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server = start_redis(None, tmp_path / "redis")
    env = {**stream_env, "REDIS_URL": f"redis://{redis_server.address}/0"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    stream_env["REDIS_URL"] = env["REDIS_URL"]  # the worker fixture reads this dict
    worker = start_worker()
    try:
        before = batch("before", 40, T0)
        produce(s, s.clicks_topic, [event_record(e) for e in before])
        collect(s, [s.recommendations_topic],
                lambda o: len(o[s.recommendations_topic]) >= len(before))

        stop_pid(redis_server.pid)  # outage
        during = batch("during", 40, T0 + 100_000)
        produce(s, s.clicks_topic, [event_record(e) for e in during])
        out = collect(s, [s.recommendations_topic],
                      lambda o: len(o[s.recommendations_topic]) >= 80, timeout_s=60)
        recs = {r["event_id"]: r for r in out[s.recommendations_topic]}
        assert {e["event_id"] for e in during} <= set(recs)
        # still useful lists, from this worker's own trending / co-visitation
        assert all(recs[e["event_id"]]["items"] for e in during[5:])
        assert worker.proc.poll() is None, worker.log_tail()

        redis_server = start_redis(redis_server.port, tmp_path / "redis")  # back
        time.sleep(0.5)
        after = batch("after", 20, T0 + 200_000)
        produce(s, s.clicks_topic, [event_record(e) for e in after])
        collect(s, [s.recommendations_topic],
                lambda o: len(o[s.recommendations_topic]) >= 100, timeout_s=60)
        client = redis.Redis.from_url(env["REDIS_URL"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not client.exists("user:u0:recs"):
            time.sleep(0.2)
        # the mirror is written again once Redis is back
        assert json.loads(client.get("user:u0:recs"))["event_id"].startswith("after-")
    finally:
        stop_pid(redis_server.pid)
