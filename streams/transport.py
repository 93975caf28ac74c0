"""Faust's aiokafka transport with a configurable fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. Apache Kafka answers a
fetch as soon as ``fetch_min_bytes`` (1 byte) is available, so that wait only bounds idle polls.
The embedded broker (tansu 0.6) ignores ``fetch_min_bytes`` and always waits the full time,
which put ~0.8 s median / 1.4 s p99 between a click and its processing (measured on loopback;
10 ms gave 4 / 9 ms). The broker profile's ``fetch_max_wait_ms`` sets the wait; with
``None`` Faust's default stands. Registered as the ``streamrec-kafka://`` transport scheme.

It also makes Faust's seek to the committed offsets atomic with respect to fetching. When a
worker gets its partitions, Faust (0.15) resumes the stream partitions and only then seeks them
to their committed offsets, while its fetch loop keeps running. Records fetched before or during
that seek were handed out by aiokafka (its position moved past them) and then thrown away by
Faust: dropped as already read (Faust resets its read offsets after the seek), or discarded by
the streams before the worker is ready. Nothing fetched them again, so a partition could stall
with its committed offset fixed and its log growing. A worker restarted after a SIGKILL hit this
in 11 of 29 runs (``tests/faults/test_worker_crash.py``: 106-607 of 1,200 events unanswered).
Here no fetch is in flight while the seek runs, records fetched before a seek are not handed to
the streams (the seek rewound their partitions, so they are fetched again), and a stream
partition with nothing committed is rewound to its beginning (``auto_offset_reset=earliest``)
instead of being left wherever the early fetches moved it. Re-reading is safe: delivery is
at-least-once and a repeated ``event_id`` changes no state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "streamrec-kafka"


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app.conf, "streamrec_fetch_max_wait_ms", None)
        if wait_ms is not None:
            # read by AIOKafkaConsumer.start() when it builds its Fetcher
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetch_lock = asyncio.Lock()
        self._seek_epoch = 0  # bumped by every completed seek to the committed offsets
        self._fetch_epoch = 0  # the seek epoch the records being handed out were fetched in
        self._rewound: set[Any] = set()  # partitions the last seek moved

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:
        async with self._fetch_lock:
            self._fetch_epoch = self._seek_epoch
            # a snapshot: Faust mutates its set of active partitions in place from this thread
            # while the fetch waits in the consumer thread, and aiokafka reads an empty set
            # as "every partition"
            partitions = None if active_partitions is None else set(active_partitions)
            if partitions is not None and not partitions:
                return {}
            return await super()._getmany(partitions, timeout)

    async def getmany(self, timeout: float) -> AsyncIterator[Any]:
        async for tp, message in super().getmany(timeout):
            if self._fetch_epoch != self._seek_epoch and tp in self._rewound:
                continue  # fetched before the seek that rewound this partition: read again
            yield tp, message

    async def perform_seek(self) -> None:
        async with self._fetch_lock:
            await super().perform_seek()
            self._seek_epoch += 1

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed = await super().seek_to_committed()
        rewound = {tp for tp, offset in committed.items() if offset is not None and offset > 0}
        fresh = [
            tp for tp, offset in committed.items()
            if tp not in rewound and not self._is_changelog_tp(tp)
        ]
        if fresh and self.app.conf.consumer_auto_offset_reset == "earliest":
            await self._thread.seek_to_beginning(*fresh)
            rewound.update(fresh)
        # only partitions that were moved: records fetched before the seek are read again
        self._rewound = rewound
        return committed


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"


def use_event_loop(kind: str) -> str:
    """Make ``kind`` ("uvloop" or "asyncio") the policy of the loops created from now on (the
    worker calls this before Faust creates its loop); returns the loop in effect ("asyncio"
    when uvloop is not installed)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    asyncio.set_event_loop_policy(None)
    return "asyncio"
