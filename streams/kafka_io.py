"""Small Kafka helpers shared by the CLI, the demo and the tests: topics, producers, consumers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streamrec.core.config import Settings, UserError


def all_topics(settings: Settings) -> list[str]:
    return [
        settings.kafka.clicks_topic,
        settings.kafka.dlq_topic,
        settings.kafka.items_topic,
        settings.kafka.recommendations_topic,
        settings.kafka.model_events_topic,
        settings.kafka.impressions_topic,
    ]


async def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Create our topics with the profile's partition count (existing ones are left alone)."""
    bootstrap = settings.require_kafka()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                **settings.kafka.client_options())
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise UserError(f"Kafka broker unreachable at {bootstrap}") from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in (topics or all_topics(settings)) if t not in existing]
        if wanted:
            partitions = settings.kafka.broker["topic_partitions"]
            try:
                await admin.create_topics(
                    [NewTopic(t, num_partitions=partitions,
                              replication_factor=settings.kafka.replication_factor)
                     for t in wanted]
                )
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def start_producer(settings: Settings, **kwargs: Any) -> AIOKafkaProducer:
    bootstrap = settings.require_kafka()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2,
                                **settings.kafka.client_options(), **kwargs)
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        await producer.stop()
        raise UserError(f"Kafka broker unreachable at {bootstrap}") from exc
    return producer


async def start_consumer(
    settings: Settings, *topics: str, group: str | None = None, from_beginning: bool = True,
    auto_commit: bool = True,
) -> AIOKafkaConsumer:
    """A started consumer; with ``auto_commit=False`` the caller commits what it has handled."""
    bootstrap = settings.require_kafka()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group or f"streamrec-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        session_timeout_ms=settings.kafka.broker["consumer_session_timeout_ms"],
        heartbeat_interval_ms=settings.kafka.broker["consumer_heartbeat_interval_ms"],
        enable_auto_commit=auto_commit,
        fetch_max_wait_ms=settings.kafka.broker.get("fetch_max_wait_ms") or 500,
        **settings.kafka.client_options(),
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        raise UserError(f"Kafka broker unreachable at {bootstrap}") from exc
    return consumer


async def read_json(consumer: AIOKafkaConsumer, idle_s: float | None = None) -> AsyncIterator[
    tuple[Any, dict[str, Any] | None]
]:
    """Yield (message, decoded JSON or None) until ``idle_s`` passes with nothing new."""
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=1000)
        if not batches:
            if idle_s is not None:
                idle_s -= 0.2
                if idle_s <= 0:
                    return
            await asyncio.sleep(0)
            continue
        for messages in batches.values():
            for msg in messages:
                try:
                    yield msg, json.loads(msg.value)
                except (ValueError, TypeError):
                    yield msg, None
