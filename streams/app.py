"""The Faust worker: topics, the per-user table, and the agents, declared thinly.

- ``clicks`` (key = user_id, raw bytes) -> :class:`ClickBatchHandler` per batch of events:
  invalid records go to ``clicks.dlq`` with a reason; valid ones update the ``user-state`` table
  (changelog-backed) through :class:`~streams.engine.RecommendationEngine`, and one
  recommendation per event goes to ``recommendations`` and to Redis.
- ``items`` -> the shared catalogue in Redis (invalid records also go to ``clicks.dlq``).

Delivery is at-least-once: a batch's offsets are acknowledged only after its recommendations
and dead letters are acknowledged by the broker. A repeated ``event_id`` leaves state alone and
re-sends its recommendation; consumers dedupe by ``event_id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from streamrec.core.config import Settings
from streamrec.core.events import ClickEvent, Rejection, dead_letter, parse_click, parse_item
from streams import transport
from streams.drift import HitRateDriftDetector
from streams.engine import EngineConfig, RecommendationEngine
from streams.feedback import AdaptiveFeedback
from streams.rerank import OnlineReranker
from streams.serving_state import RedisCatalog, mirror_to_redis
from streams.signals import FailoverSignals, InMemorySignals, RedisSignals
from streams.state import StateConfig, UserState

log = logging.getLogger(__name__)

USER_STATE_TABLE = "user-state"
WORKERS_READY_KEY = "workers:ready"
RERANKER_KEY = "reranker:workers"


def state_config(settings: Settings) -> StateConfig:
    return StateConfig(
        history_length=settings.history_length,
        session_gap_ms=settings.session_gap_ms,
        interest_half_life_ms=settings.interest_half_life_ms,
        seen_capacity=settings.seen_capacity,
        dedup_capacity=settings.dedup_capacity,
    )


def build_app(settings: Settings) -> faust.App:
    """The Faust app for ``settings`` (broker quirks come from ``settings.broker``)."""
    profile = settings.broker
    settings.home.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
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
        broker_commit_interval=settings.commit_interval_s,
        stream_wait_empty=False,
    )
    clicks = app.topic(
        settings.clicks_topic, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    items = app.topic(
        settings.items_topic, key_type=bytes, value_type=bytes,
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
    runtime = WorkerRuntime(settings)

    @app.task
    async def start_runtime() -> None:
        await runtime.start()

    @app.agent(clicks)
    async def handle_clicks(stream: Any) -> None:
        await runtime.started.wait()
        handler = ClickBatchHandler(settings, runtime, users)
        async for batch in stream.take_events(
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            await handler.handle(batch)

    @app.agent(items)
    async def handle_items(stream: Any) -> None:
        await runtime.started.wait()
        async for batch in stream.take_events(256, within=0.05):
            await runtime.handle_items(batch)

    @app.timer(interval=30.0)
    async def sync_reranker() -> None:
        if runtime.started.is_set():
            await runtime.sync_reranker()

    @app.timer(interval=5.0)
    async def report_stats() -> None:
        if runtime.started.is_set():
            log.info("worker stats: %s", json.dumps(runtime.stats()))
            await runtime.publish_stats()

    app.conf.streamrec_fetch_max_wait_ms = profile.get("fetch_max_wait_ms")  # type: ignore[attr-defined]
    app.conf.streamrec_runtime = runtime  # type: ignore[attr-defined]
    return app


class WorkerRuntime:
    """Connections and shared objects of one worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.resolved()
        self.started = asyncio.Event()
        self.redis: Any = None
        self.producer: AIOKafkaProducer | None = None
        self.engine: RecommendationEngine | None = None
        self.catalog: RedisCatalog | None = None
        self.dlq_count = 0
        self.mirror_failures = 0
        self.signals: FailoverSignals | None = None
        self.reranker: OnlineReranker | None = None
        self.feedback: AdaptiveFeedback | None = None
        self.model_client: Any = None

    async def start(self) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        s = self.settings
        # fail fast: during a Redis outage the worker degrades to its own signals
        self.redis = aioredis.from_url(
            s.require_redis(), socket_timeout=0.5, socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        await self.redis.ping()
        # our own producer for recommendations and dead letters: batched (linger), unlike the
        # changelog producer whose batch size the broker profile may pin to 1
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.require_kafka(), linger_ms=1, acks=1,
        )
        await self.producer.start()
        self.catalog = RedisCatalog(self.redis)
        signals = FailoverSignals(
            RedisSignals(
                self.redis,
                window_ms=s.trending_window_ms,
                hop_ms=s.trending_hop_ms,
                top_n=s.covisit_top_n,
                refresh_s=s.trending_refresh_s,
            ),
            InMemorySignals(s.trending_window_ms, s.trending_hop_ms, s.covisit_top_n),
        )
        self.signals = signals
        self.model_client = await self._start_model_client()
        # River: the online re-ranker learns from feedback; the drift detector watches hits
        self.reranker = OnlineReranker()
        self.feedback = AdaptiveFeedback(
            self.reranker, HitRateDriftDetector(), k=s.recommendations_k,
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )
        self.engine = RecommendationEngine(
            signals,
            self.catalog,
            model=self.model_client,
            ranker=self.reranker,
            feedback=self.feedback,
            config=EngineConfig(
                k=s.recommendations_k, model_timeout_s=s.triton_timeout_s,
                state=state_config(s),
            ),
        )
        self.started.set()

    async def _start_model_client(self) -> Any:
        if not self.settings.triton_url:
            log.warning("no Triton configured: answering from the stream recommenders")
            return None
        try:
            from inference.client import ModelClient
        except ImportError:
            return None
        client = ModelClient.from_settings(self.settings)
        await client.start()
        return client

    async def send(self, topic: str, key: bytes | None, value: dict[str, Any]) -> Any:
        assert self.producer is not None
        return await self.producer.send_and_wait(
            topic, key=key, value=json.dumps(value).encode()
        )

    async def dead_letter(self, raw: bytes | None, reason: str, message: Any) -> Any:
        self.dlq_count += 1
        record = dead_letter(
            raw, reason, topic=message.topic, partition=message.partition, offset=message.offset
        )
        return await self.send(self.settings.dlq_topic, message.key, record)

    async def handle_items(self, batch: list[Any]) -> None:
        assert self.catalog is not None
        valid = []
        pending = []
        for event in batch:
            item = parse_item(event.value, max_bytes=self.settings.max_event_bytes)
            if isinstance(item, Rejection):
                pending.append(self.dead_letter(event.value, item.reason, event.message))
            else:
                valid.append(item)
        if valid:
            await self.catalog.publish(valid)
            if self.model_client is not None and hasattr(self.model_client, "on_new_items"):
                await self.model_client.on_new_items(valid)
        await asyncio.gather(*pending)

    async def close(self) -> None:
        """Stop what :meth:`start` opened (the worker calls this on shutdown)."""
        if self.model_client is not None:
            await self.model_client.close()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def mirror(self, states: Any, recommendations: list[Any]) -> None:
        """Mirror to Redis; an outage is counted and logged, never fatal."""
        try:
            await mirror_to_redis(
                self.redis, states, recommendations,
                self.settings.redis_state_ttl_s, self.settings.interest_half_life_ms,
            )
        except Exception as exc:  # redis errors, timeouts
            self.mirror_failures += 1
            if self.mirror_failures == 1 or self.mirror_failures % 1000 == 0:
                log.warning("Redis mirror failed (%d so far): %s", self.mirror_failures, exc)

    async def publish_model_events(self) -> list[Any]:
        """Send the feedback's queued ``model-events`` (drift / retrain requests, hit rates)."""
        if self.feedback is None:
            return []
        return [
            self.send(self.settings.model_events_topic, event["type"].encode(), event)
            for event in self.feedback.drain_events()
        ]

    async def sync_reranker(self) -> None:
        """Share this worker's re-ranker through Redis and merge the others' (every worker sees
        only its partitions' feedback; weights are averaged by examples learned since the last
        sync)."""
        if self.reranker is None:
            return
        me = str(os.getpid())
        try:
            await self.redis.hset(RERANKER_KEY, me, json.dumps(self.reranker.to_dict()))
            others = await self.redis.hgetall(RERANKER_KEY)
        except Exception as exc:  # Redis down: keep learning alone
            log.debug("re-ranker sync skipped: %s", exc)
            return
        for pid, raw in others.items():
            if pid.decode() != me:
                self.reranker.merge(OnlineReranker.from_dict(json.loads(raw)))
        self.reranker._since_sync = 0

    async def mark_ready(self) -> None:
        """Tell the demo and the tests that this worker is serving (``workers:ready`` hash)."""
        await self.publish_stats()

    async def publish_stats(self) -> None:
        try:
            await self.redis.hset(
                WORKERS_READY_KEY, str(os.getpid()),
                json.dumps({"ts": time.time(), **self.stats()}),
            )
        except Exception as exc:  # Redis down: stats are best effort
            log.debug("could not publish stats: %s", exc)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dlq": self.dlq_count, "mirror_failures": self.mirror_failures}
        if self.signals is not None:
            out["signal_failures"] = self.signals.failures
        if self.feedback is not None:
            out["feedback"] = self.feedback.stats()
        if self.engine is not None:
            out.update(self.engine.stats.as_dict())
        if self.model_client is not None:
            out["model"] = self.model_client.stats.as_dict()
            live = self.model_client.live
            out["model_version"] = live.label if live is not None else None
        return out


class ClickBatchHandler:
    """Validates a batch, runs the engine, writes the table, sends and mirrors the results."""

    def __init__(self, settings: Settings, runtime: WorkerRuntime, users: Any) -> None:
        self.settings = runtime.settings
        self.runtime = runtime
        self.users = users
        self.config = state_config(self.settings)

    async def handle(self, batch: list[Any]) -> None:
        rt = self.runtime
        assert rt.engine is not None
        s = self.settings
        acks = []
        valid: list[ClickEvent] = []
        for event in batch:
            parsed = parse_click(
                event.value,
                max_bytes=s.max_event_bytes,
                max_id_length=s.max_id_length,
                max_future_skew_ms=s.max_future_skew_ms,
            )
            if isinstance(parsed, ClickEvent):
                valid.append(parsed)
            else:
                acks.append(rt.dead_letter(event.value, parsed.reason, event.message))
        if valid:
            states: dict[str, UserState] = {}
            for user_id in {e.user_id for e in valid}:
                stored = self.users.get(user_id.encode())
                if stored is not None:
                    states[user_id] = UserState.from_dict(stored)
            recommendations = await rt.engine.process_batch(valid, states)
            for user_id, state in states.items():
                self.users[user_id.encode()] = state.to_dict()
            for rec in recommendations:
                acks.append(rt.send(s.recommendations_topic, rec.user_id.encode(), rec.to_json()))
            acks.append(rt.mirror(states.values(), recommendations))
            acks.extend(await rt.publish_model_events())
        # at-least-once: the batch is acknowledged (take_events acks after this returns) only
        # once the broker has every recommendation and dead letter
        await asyncio.gather(*acks)
