"""The Faust worker: topics, the per-user table, and the agents, declared thinly.

- ``clicks`` (key = user_id, raw bytes) -> :class:`~streams.handlers.ClickBatchHandler` per
  batch of events: invalid records go to ``clicks.dlq`` with a reason; valid ones update the
  ``user-state`` table (changelog-backed) through :class:`~streams.engine.RecommendationEngine`,
  and one recommendation per event goes to ``recommendations`` and to Redis. Forget requests
  on ``clicks`` (``streamrec forget``) are applied in order by
  :class:`~streams.forget.ForgettingClickHandler`.
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
import os
import sys
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import faust

from streamrec.core.config import Settings
from streams import transport
from streams.components import faust_credentials
from streams.forget import ForgettingClickHandler
from streams.handlers import ClickBatchHandler, ItemBatchHandler
from streams.runtime import WorkerRuntime
from streams.table_store import USER_STATE_TABLE, app_store_url, user_state_store_url

log = logging.getLogger(__name__)


# after an agent crashed, the graceful stop gets this long; then the process exits anyway (Faust's
# consumer stop was seen to hang for minutes after a crash, leaving a process that serves nothing)
CRASH_EXIT_GRACE_S = 20.0


def exit_if_still_running(grace_s: float) -> threading.Timer:
    """Exit the process with status 1 after ``grace_s`` unless it has ended by then (a daemon
    timer thread: it neither needs the event loop nor keeps the process alive)."""

    def exit_now() -> None:
        print(f"the worker did not stop within {grace_s:.0f} s of its agent's crash: exiting",
              file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(grace_s, exit_now)
    timer.daemon = True
    timer.start()
    return timer


class PendingRuntime:
    """The worker's runtime as the Faust app sees it: built by the app's first task (it needs
    the app's event loop), awaited by the agents and the worker, closed when the worker stops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built = asyncio.Event()
        self._runtime: WorkerRuntime | None = None
        # set when an agent crashed: readiness fails, then the worker exits non-zero
        self.crash_reason: BaseException | None = None

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

    @property
    def healthy(self) -> bool:
        """False once an agent has crashed (the worker is on its way out: not ready)."""
        return self.crash_reason is None

    async def crashed(self, agent: str, exc: BaseException) -> None:
        """Record that ``agent`` crashed and withdraw this worker's readiness record."""
        log.critical("agent %s crashed; the worker exits for its supervisor to restart it",
                     agent, exc_info=exc)
        self.crash_reason = exc
        exit_if_still_running(CRASH_EXIT_GRACE_S)
        if self._runtime is not None:
            await self._runtime.mark_unready()

    async def close(self) -> None:
        """Close the runtime if it was built (the worker calls this on shutdown)."""
        if self._runtime is not None:
            await self._runtime.close()


def faust_app(settings: Settings, datadir: Path) -> faust.App:
    """A Faust app on the configured broker with the profile's settings (the worker's and the
    benchmark's plain agent share them, so the two are compared on equal terms)."""
    profile = settings.kafka.broker
    app = faust.App(
        settings.worker.app_id,
        broker=f"{transport.SCHEME}://{settings.require_kafka()}",
        store=app_store_url(settings),  # worker.store, else the profile's (streams.table_store)
        datadir=str(datadir),
        web_enabled=False,
        web_bind="127.0.0.1",
        topic_partitions=profile["topic_partitions"],
        topic_replication_factor=settings.kafka.replication_factor,
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
    return app


def build_app(settings: Settings, runtime: PendingRuntime) -> faust.App:
    """The Faust app for ``settings`` (broker quirks come from ``settings.kafka.broker``)."""
    profile = settings.kafka.broker
    settings.home.mkdir(parents=True, exist_ok=True)
    app = faust_app(settings, settings.home / "faust-data")
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
        store=user_state_store_url(settings),  # RocksDB: each key under its changelog partition
    )

    @app.task
    async def build_runtime() -> None:
        await runtime.build()

    async def exit_on_crash(agent: str, body: Awaitable[None]) -> None:
        """Run an agent's loop; if it raises, readiness fails and the worker exits non-zero.

        Faust's own supervisor would log "Crashed" and leave a live process consuming nothing
        on that agent's partitions. ``app.crash`` marks the app and its worker crashed: the
        worker stops and re-raises the reason, so the process exits with status 1.
        """
        try:
            await body
        except Exception as exc:
            await runtime.crashed(agent, exc)
            await app.crash(exc)

    @app.agent(clicks)
    async def handle_clicks(stream: Any) -> None:
        await exit_on_crash("clicks", answer_clicks(stream))

    async def answer_clicks(stream: Any) -> None:
        handler = ForgettingClickHandler(ClickBatchHandler(await runtime.wait(), users))
        metrics = handler.runtime.metrics
        async for batch in stream.take_events(
            settings.worker.batch_size, within=settings.worker.batch_within_s
        ):
            await handler.handle(batch)
            metrics.record_batch(settings.kafka.clicks_topic, batch)

    @app.agent(items)
    async def handle_items(stream: Any) -> None:
        await exit_on_crash("items", publish_items(stream))

    async def publish_items(stream: Any) -> None:
        handler = ItemBatchHandler(await runtime.wait())
        metrics = handler.runtime.metrics
        async for batch in stream.take_events(256, within=0.05):
            await handler.handle(batch)
            metrics.record_batch(settings.kafka.items_topic, batch, latency=False)

    @app.timer(interval=30.0)
    async def sync_reranker() -> None:
        if (built := runtime.runtime) is not None:
            await built.sync_reranker()

    @app.timer(interval=5.0)
    async def report_stats() -> None:
        if (built := runtime.runtime) is not None and runtime.healthy:
            log.info("worker stats: %s", json.dumps(built.stats()))
            await built.publish_stats()

    return app
