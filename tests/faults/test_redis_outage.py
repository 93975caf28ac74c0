"""A Redis outage degrades the worker (its own signals), never stops it; Redis is repopulated.

Redis is killed (SIGKILL) mid-stream and restarted empty (no persistence): the stream keeps
flowing from the worker's own trending and co-visitation, and once Redis is back the worker
writes its shared keys again: every user's mirrored state (equal to the offline reference over
all the events, those of the outage included), the latest lists, the trending counts and its
entry in ``workers:ready``.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import redis

from streamrec.core.config import Settings
from streamrec.core.embedded import start_redis, stop_pid
from streams.runtime import WORKERS_READY_KEY, worker_identity
from tests.faults.ledger import Tally, answer_counts, read_log, wait_states_equal_reference
from tests.support import collect, event_record, produce, wait_until

pytestmark = pytest.mark.slow  # 17-41 s here

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
    topic = s.kafka.recommendations_topic

    def answer_all(events: list[dict], when: str) -> dict[str, dict]:
        """Send ``events``, wait for an answer to each; every answer so far by event_id."""
        produce(s, s.kafka.clicks_topic, [event_record(e) for e in events])
        wanted = {e["event_id"] for e in events}
        out = collect(s, [topic], lambda o: wanted <= {r["event_id"] for r in o[topic]},
                      what=f"an answer to each of the {len(events)} clicks {when}",
                      diagnose=lambda _: worker.log_tail())
        return {r["event_id"]: r for r in out[topic]}

    try:
        before = batch("before", 40, T0)
        answer_all(before, "before the outage")

        os.kill(redis_server.pid, signal.SIGKILL)  # outage: nothing flushed, nothing kept
        stop_pid(redis_server.pid)  # reaps it
        during = batch("during", 40, T0 + 100_000)
        recs = answer_all(during, "during the outage")
        # still useful lists, from this worker's own trending / co-visitation
        assert all(recs[e["event_id"]]["items"] for e in during[5:])
        assert worker.proc.poll() is None, worker.log_tail()

        redis_server = start_redis(redis_server.port, tmp_path / "redis")  # back, empty
        client = redis.Redis.from_url(env["REDIS_URL"])
        assert client.dbsize() == 0
        after = batch("after", 20, T0 + 200_000)
        answer_all(after, "after the outage")

        def mirrored_event_id() -> str:
            mirrored = client.get("user:u0:recs")
            return json.loads(mirrored)["event_id"] if mirrored else ""

        # the mirror is written again once Redis is back
        wait_until(lambda: mirrored_event_id().startswith("after-"), 15,
                   "u0's recommendations mirrored to Redis from an event after the outage",
                   diagnose=lambda: f"mirrored: {mirrored_event_id()!r}\n{worker.log_tail()}")
        # repopulated: every user's state (the outage's events included), trending, readiness
        sent = [*before, *during, *after]
        wait_states_equal_reference(s, sent)
        assert client.keys("trend:*"), "no trending counts written after the restart"
        wait_until(lambda: client.hexists(WORKERS_READY_KEY, worker_identity(worker.pid)), 30,
                   "the worker back in workers:ready")
        answers = answer_counts(read_log(s, topic))
        tally = Tally.count("Redis SIGKILL + restart", [e["event_id"] for e in sent],
                            answers).report(answered_during_outage=len(during))
        assert tally.lost == 0 and tally.duplicated == 0
        client.close()
    finally:
        stop_pid(redis_server.pid)
