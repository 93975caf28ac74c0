"""``streamrec trainer``: the Kafka wiring around a :class:`~training.trainer.Trainer`.

It consumes ``model-events`` (drift requests, the workers' ``hit_rate`` reports), asks the
trainer's policy when to retrain, replays recent clicks with
:func:`training.data.read_clicks_from_kafka` for each retrain, and puts every decision the
trainer records back on ``model-events``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from streams.kafka_io import ensure_topics, start_consumer, start_producer
from training.data import read_clicks_from_kafka
from training.trainer import Trainer


class TrainerService:
    """The service loop: model events in, retrains, decisions out."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.published = 0  # decisions already put on model-events

    async def run(self, *, schedule_s: float | None = None, max_retrains: int | None = None,
                  idle_exit_s: float | None = None) -> None:
        """Run until ``max_retrains`` retrains, or ``idle_exit_s`` without model events."""
        trainer, s = self.trainer, self.trainer.settings
        topic = s.kafka.model_events_topic
        await ensure_topics(s, [topic, s.kafka.clicks_topic])
        producer = await start_producer(s)
        consumer = await start_consumer(s, topic, group=f"{s.worker.app_id}-trainer",
                                        from_beginning=True)
        if schedule_s is not None:
            trainer.policy.schedule_every = schedule_s
        # the catalogue's text is embedded before the first drift, not during its retrain
        await asyncio.to_thread(trainer.embed_texts)
        start = idle_since = time.monotonic()
        try:
            while max_retrains is None or trainer.counters["retrain"] < max_retrains:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for messages in batches.values():
                    for event in _model_events(messages):
                        idle_since = time.monotonic()
                        trainer.learn_one(event)
                trainer.check_live()
                reason = trainer.policy.decide(time.monotonic() - start)
                if reason is not None:
                    # the clicks up to now: the topic is still being written
                    recent = await asyncio.to_thread(
                        read_clicks_from_kafka, s.require_kafka(), s.kafka.clicks_topic,
                        until_ms=int(time.time() * 1000),
                        client_options=s.kafka.client_options())
                    await asyncio.to_thread(trainer.retrain, reason, recent)
                for event in trainer.decisions[self.published:]:
                    await producer.send_and_wait(topic, json.dumps(event).encode())
                self.published = len(trainer.decisions)
                if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
        finally:
            await consumer.stop()
            await producer.stop()


def _model_events(messages: list[Any]) -> list[dict[str, Any]]:
    """The decodable model events of other sources (the trainer's own are skipped)."""
    events = []
    for message in messages:
        try:
            event = json.loads(message.value)
        except (TypeError, ValueError):
            continue
        if isinstance(event, dict) and event.get("source") != "trainer":
            events.append(event)
    return events
