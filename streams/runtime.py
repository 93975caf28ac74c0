"""What one worker process holds: its connections, the engine and its learners, built once.

:meth:`WorkerRuntime.create` opens Redis and the worker's own Kafka producer, starts the model
client when Triton is configured, and builds the engine with its signals, re-ranker and
feedback: it returns a runtime with every part in place (``model_client`` is ``None`` only when
no Triton is configured). :meth:`WorkerRuntime.close` releases what it opened.

The runtime is the worker's way out: recommendations, dead letters and ``model-events`` go to
Kafka through :meth:`WorkerRuntime.send`; states and lists are mirrored to Redis; the re-ranker's
weights are exchanged with the other workers, and the worker's stats (which also say "this
worker is serving") are published to Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from inference.client import ModelClient
from streamrec.core.config import Settings
from streamrec.core.events import dead_letter, dead_letter_key
from streams.components import build_drift_detector, build_reranker, engine_config
from streams.engine import RecommendationEngine
from streams.feedback import AdaptiveFeedback
from streams.observability import RuntimeCollector, WorkerMetrics
from streams.rerank.exchange import sync_through_redis
from streams.rerank.reranker import OnlineReranker
from streams.serving_state import RedisCatalog, mirror_to_redis
from streams.signals import FailoverSignals, InMemorySignals, RedisSignals

log = logging.getLogger(__name__)

# a hash of the serving workers' stats by worker identity: the demo and the tests wait for it
WORKERS_READY_KEY = "workers:ready"
# a hash of the workers' re-ranker snapshots by worker identity (streams.rerank.exchange)
RERANKER_KEY = "reranker:workers"


def worker_identity(pid: int | None = None, host: str | None = None) -> str:
    """``host:pid``: unique per process across containers, where every worker is PID 1 but
    each container has its own hostname (its id)."""
    return f"{host or socket.gethostname()}:{os.getpid() if pid is None else pid}"


class WorkerRuntime:
    """Connections and shared objects of one worker process, fully built by :meth:`create`."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis: aioredis.Redis,
        producer: AIOKafkaProducer,
        catalog: RedisCatalog,
        signals: FailoverSignals,
        model_client: ModelClient | None,
        reranker: OnlineReranker,
        feedback: AdaptiveFeedback,
        engine: RecommendationEngine,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.producer = producer
        self.catalog = catalog
        self.signals = signals
        self.model_client = model_client
        self.reranker = reranker
        self.feedback = feedback
        self.engine = engine
        self.dlq_count = 0
        self.mirror_failures = 0
        self.identity = worker_identity()
        self.endpoint: str | None = None  # host:port of /metrics, once the worker serves it
        self.sent: Counter[str] = Counter()  # records the broker acknowledged, by topic
        self.metrics = WorkerMetrics()
        self.metrics.watch(RuntimeCollector(self))

    @classmethod
    async def create(cls, settings: Settings) -> WorkerRuntime:
        """Connect to Redis, Kafka and (when configured) Triton and build the engine."""
        s = settings.resolved()
        # fail fast: during a Redis outage the worker degrades to its own signals
        redis = aioredis.from_url(
            s.require_redis(), socket_timeout=0.5, socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0), **s.redis_options(),
        )
        await redis.ping()
        # our own producer for recommendations and dead letters: batched (linger), unlike the
        # changelog producer whose batch size the broker profile may pin to 1
        producer = AIOKafkaProducer(bootstrap_servers=s.require_kafka(), linger_ms=1, acks=1,
                                    **s.kafka.client_options())
        await producer.start()
        try:
            model_client = await _start_model_client(s)
        except BaseException:
            await producer.stop()
            await redis.aclose()
            raise
        catalog = RedisCatalog(redis, ttl_s=s.redis.catalog_ttl_s)
        engine_settings = s.engine
        signals = FailoverSignals(
            RedisSignals(
                redis,
                window_ms=engine_settings.trending_window_ms,
                hop_ms=engine_settings.trending_hop_ms,
                top_n=engine_settings.covisit_top_n,
                refresh_s=engine_settings.trending_refresh_s,
                bucket_ttl_s=s.redis.trending_ttl_s,
                covis_ttl_s=s.redis.covis_ttl_s,
            ),
            InMemorySignals(
                engine_settings.trending_window_ms, engine_settings.trending_hop_ms,
                engine_settings.covisit_top_n,
            ),
        )
        # River: the online re-ranker learns from feedback; the drift detector watches hits
        reranker = build_reranker(s)
        feedback = AdaptiveFeedback(
            reranker, build_drift_detector(s), k=engine_settings.k,
            worker=worker_identity(),
        )
        engine = RecommendationEngine(
            signals,
            catalog,
            model=model_client,
            ranker=reranker,
            feedback=feedback,
            config=engine_config(s),
        )
        return cls(
            s, redis=redis, producer=producer, catalog=catalog, signals=signals,
            model_client=model_client, reranker=reranker, feedback=feedback, engine=engine,
        )

    async def close(self) -> None:
        """Stop what :meth:`create` opened (the worker calls this on shutdown)."""
        if self.model_client is not None:
            await self.model_client.close()
        await self.producer.stop()
        await self.redis.aclose()

    # --- Kafka -----------------------------------------------------------------------------
    async def send(self, topic: str, key: bytes | None, value: dict[str, Any] | bytes) -> Any:
        """Send ``value`` (a dict, or JSON already encoded) and wait for the broker's ack."""
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        result = await self.producer.send_and_wait(topic, key=key, value=data)
        self.sent[topic] += 1
        return result

    async def send_many(self, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Queue every message (encoded) in the producer's batch, then wait for all the broker's
        acks: one coroutine for a batch's answers, not one task per record."""
        acks = [await self.producer.send(topic, key=key, value=value) for key, value in messages]
        if acks:
            await asyncio.gather(*acks)
        self.sent[topic] += len(acks)

    async def dead_letter(self, raw: bytes | None, reason: str, message: Any) -> Any:
        self.dlq_count += 1
        self.metrics.record_dead_letter(reason)
        record = dead_letter(
            raw, reason, topic=message.topic, partition=message.partition, offset=message.offset
        )
        return await self.send(
            self.settings.kafka.dlq_topic, dead_letter_key(message.key), record
        )

    async def publish_model_events(self) -> list[Any]:
        """Send the feedback's queued ``model-events`` (drift / retrain requests, hit rates)."""
        return [
            self.send(self.settings.kafka.model_events_topic, event["type"].encode(), event)
            for event in self.feedback.drain_events()
        ]

    # --- Redis -----------------------------------------------------------------------------
    async def mirror(self, states: Any, recommendations: list[Any]) -> None:
        """Mirror to Redis; an outage is counted and logged, never fatal."""
        try:
            await mirror_to_redis(
                self.redis, states, recommendations,
                self.settings.redis.state_ttl_s, self.settings.engine.interest_half_life_ms,
            )
        except Exception as exc:  # redis errors, timeouts
            self.mirror_failures += 1
            if self.mirror_failures == 1 or self.mirror_failures % 1000 == 0:
                log.warning("Redis mirror failed (%d so far): %s", self.mirror_failures, exc)

    async def sync_reranker(self) -> None:
        """Share this worker's re-ranker through Redis and merge the others' (every worker sees
        only its partitions' feedback; weights are averaged by examples learned since the last
        sync)."""
        try:
            await sync_through_redis(self.reranker, self.redis, RERANKER_KEY, self.identity,
                                     ttl_s=self.settings.redis.worker_ttl_s)
        except Exception as exc:  # Redis down: keep learning alone
            log.debug("re-ranker sync skipped: %s", exc)

    async def mark_ready(self) -> None:
        """Tell the demo and the tests that this worker is serving (``workers:ready`` hash)."""
        await self.publish_stats()

    async def mark_unready(self) -> None:
        """Withdraw this worker's ``workers:ready`` record (an agent crashed: it exits next)."""
        try:
            await self.redis.hdel(WORKERS_READY_KEY, self.identity)
        except Exception as exc:  # Redis down: the record's TTL withdraws it
            log.warning("could not withdraw the readiness record: %s", exc)

    async def publish_stats(self) -> None:
        try:
            await self.redis.hset(
                WORKERS_READY_KEY, self.identity,
                json.dumps({"ts": time.time(), "pid": os.getpid(), "endpoint": self.endpoint,
                            **self.stats()}),
            )
            await self.redis.expire(WORKERS_READY_KEY, self.settings.redis.worker_ttl_s)
        except Exception as exc:  # Redis down: stats are best effort
            log.debug("could not publish stats: %s", exc)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dlq": self.dlq_count,
            "mirror_failures": self.mirror_failures,
            "signal_failures": self.signals.failures,
            "feedback": self.feedback.stats(),
            **self.engine.stats.as_dict(),
        }
        if self.model_client is not None:
            out["model"] = self.model_client.stats.as_dict()
            live = self.model_client.live
            out["model_version"] = live.label if live is not None else None
        return out


async def _start_model_client(settings: Settings) -> ModelClient | None:
    if not settings.triton.url:
        log.warning("no Triton configured: answering from the stream recommenders")
        return None
    client = ModelClient.from_settings(settings)
    await client.start()
    return client
