"""A worker killed with SIGKILL mid-stream loses no event and no state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading

import pytest

from streamrec.cli.producer import send_all
from streamrec.core.config import Settings
from tests.support import (
    assert_every_event_answered_with_exact_state,
    collect,
    committed_count,
    committed_offsets,
    wait_until,
)

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000
# the first worker is killed once it has handled this many of the 1200 clicks (mid-stream)
HANDLED_BEFORE_KILL = 300


@pytest.mark.parametrize(
    "first_worker_env",
    [
        pytest.param({}, id="offsets-committed"),
        # nothing committed before the kill: the replacement must start from the beginning
        # and every repeat must leave the recovered state unchanged
        pytest.param({"STREAMREC_WORKER__COMMIT_INTERVAL_S": "3600"}, id="nothing-committed"),
    ],
)
def test_sigkill_mid_stream_recovers_state_and_answers_every_event(
    stream_settings: Settings, start_worker, first_worker_env: dict[str, str]
) -> None:
    s = stream_settings
    first = start_worker(extra_env=first_worker_env)
    sent = [
        {"event_id": f"k-{i}", "user_id": f"u{i % 9}", "item_id": f"it{(i * 13) % 97}",
         "type": "view", "ts": T0 + i * 500}
        for i in range(1200)
    ]
    records = [(e["user_id"].encode(), json.dumps(e).encode()) for e in sent]
    producer = threading.Thread(
        target=lambda: asyncio.run(
            send_all(s, s.kafka.clicks_topic, records, rate=300, progress=False))
    )
    producer.start()
    # kill mid-stream, once the first worker has handled a few hundred clicks: committed them,
    # or (nothing-committed) answered them
    if first_worker_env:
        topic = s.kafka.recommendations_topic
        collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= HANDLED_BEFORE_KILL,
                what=f"the first worker answering {HANDLED_BEFORE_KILL} clicks",
                diagnose=lambda _: first.log_tail())
    else:
        clicks = s.kafka.clicks_topic
        wait_until(lambda: committed_count(s, clicks) >= HANDLED_BEFORE_KILL, 60,
                   f"the first worker committing offsets for {HANDLED_BEFORE_KILL} clicks",
                   interval_s=0.2,
                   diagnose=lambda: f"{committed_offsets(s, clicks)}\n{first.log_tail()}")
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait()
    committed = committed_offsets(s, s.kafka.clicks_topic)
    assert committed, "the clicks topic has no partitions"
    if first_worker_env:
        assert all(o is None for o in committed.values()), committed
    else:
        assert any(o for o in committed.values()), committed
    second = start_worker()  # a new worker in the same group recovers from the changelog
    producer.join()
    assert_every_event_answered_with_exact_state(s, sent, second)
