"""The Faust worker: topics, the per-user table, and the agents, declared thinly.

- ``clicks`` (key = user_id, raw bytes) -> :class:`~streams.handlers.ClickBatchHandler` per
  batch of events: invalid records go to ``clicks.dlq`` with a reason; valid ones update the
  ``user-state`` table (changelog-backed) through :class:`~streams.engine.RecommendationEngine`,
  and one recommendation per event goes to ``recommendations`` and to Redis.
- ``items`` -> :class:`~streams.handlers.ItemBatchHandler`: the shared catalogue in Redis
  (invalid records also go to ``clicks.dlq``).
- Timers: the re-ranker's weights are exchanged with the other workers every 30 s; the worker's
  stats are logged and published to Redis every 5 s.

The agents wait for the worker's :class:`~streams.runtime.WorkerRuntime` (connections, engine,
learners), which the app's first task builds on the app's event loop (:class:`PendingRuntime`).

Delivery is at-least-once: a batch's offsets are acknowledged only after its recommendations
and dead letters are acknowledged by the broker. A repeated ``event_id`` leaves state alone and
re-sends its recommendation; consumers dedupe by ``event_id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import faust

from streamrec.core.config import Settings
from streams import transport
from streams.components import faust_credentials
from streams.handlers import ClickBatchHandler, ItemBatchHandler
from streams.runtime import WorkerRuntime

log = logging.getLogger(__name__)

USER_STATE_TABLE = "user-state"


class PendingRuntime:
    """The worker's runtime as the Faust app sees it: built by the app's first task (it needs
    the app's event loop), awaited by the agents and the worker, closed when the worker stops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built = asyncio.Event()
        self._runtime: WorkerRuntime | None = None

    async def build(self) -> WorkerRuntime:
        self._runtime = await WorkerRuntime.create(self.settings)
        self._built.set()
        return self._runtime

    @property
    def runtime(self) -> WorkerRuntime | None:
        """The runtime once built, else ``None`` (the timers skip their turn)."""
        return self._runtime

    async def wait(self) -> WorkerRuntime:
        """The runtime, once :meth:`build` has built it."""
        await self._built.wait()
        if self._runtime is None:
            raise RuntimeError("the worker runtime was not built")
        return self._runtime

    async def close(self) -> None:
        """Close the runtime if it was built (the worker calls this on shutdown)."""
        if self._runtime is not None:
            await self._runtime.close()


def build_app(settings: Settings, runtime: PendingRuntime) -> faust.App:
    """The Faust app for ``settings`` (broker quirks come from ``settings.kafka.broker``)."""
    profile = settings.kafka.broker
    settings.home.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker.app_id,
        broker=f"{transport.SCHEME}://{settings.require_kafka()}",
        store="memory://",
        datadir=str(settings.home / "faust-data"),
        web_enabled=False,
        web_bind="127.0.0.1",
        topic_partitions=profile["topic_partitions"],
        topic_replication_factor=1,
        broker_session_timeout=profile["broker_session_timeout"],
        broker_heartbeat_interval=profile["broker_heartbeat_interval"],
        broker_rebalance_timeout=profile["broker_rebalance_timeout"],
        producer_max_batch_size=profile["producer_max_batch_size"],
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.worker.commit_interval_s,
        broker_credentials=faust_credentials(settings),
        stream_wait_empty=False,
    )
    # read by streams.transport when it builds the worker's consumer
    app.conf.streamrec_fetch_max_wait_ms = profile.get("fetch_max_wait_ms")  # type: ignore[attr-defined]
    clicks = app.topic(
        settings.kafka.clicks_topic, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    items = app.topic(
        settings.kafka.items_topic, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    users = app.Table(
        USER_STATE_TABLE,
        default=None,
        key_type=bytes,  # raw user_id bytes, hashed exactly like the clicks topic's keys
        partitions=profile["topic_partitions"],
        # the changelog partition comes from the key, exactly as the clicks producer's does:
        # batches (take_events) have no single "current event" to take it from
        use_partitioner=True,
    )

    @app.task
    async def build_runtime() -> None:
        await runtime.build()

    @app.agent(clicks)
    async def handle_clicks(stream: Any) -> None:
        handler = ClickBatchHandler(await runtime.wait(), users)
        async for batch in stream.take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        ):
            await handler.handle(batch)

    @app.agent(items)
    async def handle_items(stream: Any) -> None:
        handler = ItemBatchHandler(await runtime.wait())
        async for batch in stream.take_events(256, within=0.05):
            await handler.handle(batch)

    @app.timer(interval=30.0)
    async def sync_reranker() -> None:
        if (built := runtime.runtime) is not None:
            await built.sync_reranker()

    @app.timer(interval=5.0)
    async def report_stats() -> None:
        if (built := runtime.runtime) is not None:
            log.info("worker stats: %s", json.dumps(built.stats()))
            await built.publish_stats()

    return app
