"""A consumer of ``recommendations`` that joins its group and never polls does not slow the worker.

Kafka decouples the worker from its readers: the worker appends to the log, a reader fetches at
its own pace. The stalled reader here joins a consumer group on ``recommendations`` (it keeps
heartbeating, so it stays a member holding every partition) and never asks for a record. The
same clicks are answered, and a fresh reader receives every answer, as in a phase without it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from streamrec.core.config import Settings
from tests.faults.ledger import Tally, answer_counts, read_log
from tests.support import collect, event_record, produce, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

T0 = 1_700_000_000_000
CLICKS = 400


def batch(tag: str, start: int) -> list[dict]:
    return [{"event_id": f"{tag}-{i}", "user_id": f"u{i % 25}", "item_id": f"it{(i * 7) % 97}",
             "type": "click", "ts": T0 + (start + i) * 1000} for i in range(CLICKS)]


class StalledReader:
    """An aiokafka group consumer on its own loop (so it heartbeats) that never polls."""

    def __init__(self, settings: Settings, topic: str, group_id: str) -> None:
        self.settings, self.topic, self.group_id = settings, topic, group_id
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.consumer: Any = None

    def start(self) -> StalledReader:
        from aiokafka import AIOKafkaConsumer

        async def start() -> None:
            profile = self.settings.kafka.broker
            self.consumer = AIOKafkaConsumer(
                self.topic, bootstrap_servers=self.settings.require_kafka(),
                group_id=self.group_id, enable_auto_commit=False,
                session_timeout_ms=profile["consumer_session_timeout_ms"],
                heartbeat_interval_ms=profile["consumer_heartbeat_interval_ms"],
                max_partition_fetch_bytes=4096,  # a small prefetch, then nothing more
            )
            await self.consumer.start()

        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)
        return self

    def assignment(self) -> set[Any]:
        return set(self.consumer.assignment())

    def stop(self) -> None:
        if self.consumer is not None:
            asyncio.run_coroutine_threadsafe(self.consumer.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def test_a_reader_that_never_polls_does_not_slow_the_worker(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    worker = start_worker()
    topic = s.kafka.recommendations_topic

    def answer(events: list[dict], when: str) -> float:
        """Send ``events``; seconds until a fresh reader has an answer to each."""
        started = time.monotonic()
        produce(s, s.kafka.clicks_topic, [event_record(e) for e in events])
        wanted = {e["event_id"] for e in events}
        collect(s, [topic], lambda o: wanted <= {r["event_id"] for r in o[topic]},
                what=f"an answer to each of the {len(events)} clicks {when}",
                diagnose=lambda _: worker.log_tail())
        return time.monotonic() - started

    free = answer(batch("free", 0), "with no stalled reader")
    stalled = StalledReader(s, topic, f"{s.worker.app_id}-stalled-reader").start()
    try:
        wait_until(stalled.assignment, 30, "the stalled reader joining its group")
        during = batch("stalled", CLICKS)
        with_stalled = answer(during, "while a reader stalls")
        assert stalled.assignment(), "the stalled reader left its group"
        assert worker.proc.poll() is None, worker.log_tail()
    finally:
        stalled.stop()
    sent = [e["event_id"] for e in (*batch("free", 0), *during)]
    tally = Tally.count("stalled recommendations reader", sent,
                        answer_counts(read_log(s, topic)))
    tally.report(seconds_without=round(free, 1), seconds_with_stalled_reader=round(with_stalled, 1))
    assert tally.lost == 0 and tally.duplicated == 0
    # the same pace, with the generous margin a shared 2-core machine needs
    assert with_stalled < 3 * free + 10, (free, with_stalled)
