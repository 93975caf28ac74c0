"""A worker killed with SIGKILL mid-stream loses no event and no state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import pytest

from streamrec.cli.producer import send_all
from streamrec.core.config import Settings
from tests.support import assert_every_event_answered_with_exact_state

T0 = 1_700_000_000_000


def committed_offsets(s: Settings) -> dict[int, int | None]:
    """The worker group's committed offset per clicks partition (OffsetFetch; joins nothing)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def run() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=s.require_kafka(), group_id=s.app_id,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # fetches the cluster's metadata
            partitions = consumer.partitions_for_topic(s.clicks_topic) or set()
            return {p: await consumer.committed(TopicPartition(s.clicks_topic, p))
                    for p in sorted(partitions)}
        finally:
            await consumer.stop()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "first_worker_env",
    [
        pytest.param({}, id="offsets-committed"),
        # nothing committed before the kill: the replacement must start from the beginning
        # and every repeat must leave the recovered state unchanged
        pytest.param({"STREAMREC_COMMIT_INTERVAL_S": "3600"}, id="nothing-committed"),
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
        target=lambda: asyncio.run(send_all(s, s.clicks_topic, records, rate=300, progress=False))
    )
    producer.start()
    time.sleep(2.0)  # mid-stream: roughly 600 events sent, a few hundred processed
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait()
    committed = committed_offsets(s)
    assert committed, "the clicks topic has no partitions"
    if first_worker_env:
        assert all(o is None for o in committed.values()), committed
    else:
        assert any(o for o in committed.values()), committed
    second = start_worker()  # a new worker in the same group recovers from the changelog
    producer.join()
    assert_every_event_answered_with_exact_state(s, sent, second)
