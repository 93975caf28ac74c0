"""A worker joining mid-stream takes over partitions without losing or double counting events."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from streamrec.cli.producer import send_all
from streamrec.core.config import Settings
from tests.support import assert_every_event_answered_with_exact_state, collect, wait_worker_ready

pytestmark = pytest.mark.slow

# the second worker joins once the first has answered this many of the 1500 clicks
ANSWERED_BEFORE_JOIN = 100


def test_worker_joining_mid_stream_answers_every_event_with_exact_state(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    first = start_worker()
    sent = [
        {"event_id": f"j-{i}", "user_id": f"v{i % 16}", "item_id": f"it{(i * 7) % 89}",
         "type": "view", "ts": 1_700_000_000_000 + i * 500}
        for i in range(1500)
    ]
    records = [(e["user_id"].encode(), json.dumps(e).encode()) for e in sent]
    producer = threading.Thread(
        target=lambda: asyncio.run(
            send_all(s, s.kafka.clicks_topic, records, rate=100, progress=False))
    )
    producer.start()
    # 15 s of events; a join takes ~7 s here, so the rebalance lands mid-stream
    topic = s.kafka.recommendations_topic
    collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= ANSWERED_BEFORE_JOIN,
            what=f"the first worker answering {ANSWERED_BEFORE_JOIN} clicks",
            diagnose=lambda _: first.log_tail())
    # the group rebalances while events keep arriving: the first worker gives up partitions
    # (their state moves with the changelog), the second recovers and continues them
    second = start_worker(wait_ready=False)
    producer.join()
    wait_worker_ready(s.redis.url, second)
    assert_every_event_answered_with_exact_state(s, sent, first, second)
