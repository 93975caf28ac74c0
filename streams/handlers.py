"""What the worker does with a batch of records: the logic behind the Faust agents.

- :class:`ClickBatchHandler`: validates a batch of ``clicks``, runs the engine, writes the
  ``user-state`` table, sends one recommendation per event and mirrors states and lists to Redis.
- :class:`ItemBatchHandler`: publishes valid ``items`` records to the shared catalogue in Redis.

Invalid records of either topic go to the dead-letter topic with a reason. Delivery is
at-least-once: a handler returns (and Faust's ``take_events`` acknowledges the batch) only once
the broker has acknowledged every recommendation and dead letter of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from streamrec.core.events import CatalogItem, ClickEvent, Rejection, parse_click, parse_item
from streams.runtime import WorkerRuntime
from streams.state import UserState


class ClickBatchHandler:
    """Validates a batch, runs the engine, writes the table, sends and mirrors the results."""

    def __init__(self, runtime: WorkerRuntime, users: MutableMapping[bytes, Any]) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.users = users

    async def handle(self, batch: list[Any]) -> None:
        rt = self.runtime
        limits = self.settings.worker
        acks = []
        valid: list[ClickEvent] = []
        for event in batch:
            parsed = parse_click(
                event.value,
                max_bytes=limits.max_event_bytes,
                max_id_length=limits.max_id_length,
                max_future_skew_ms=limits.max_future_skew_ms,
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
            topic = self.settings.kafka.recommendations_topic
            for rec in recommendations:
                acks.append(rt.send(topic, rec.user_id.encode(), rec.to_json()))
            acks.append(rt.mirror(states.values(), recommendations))
            acks.extend(await rt.publish_model_events())
        # at-least-once: the batch is acknowledged (take_events acks after this returns) only
        # once the broker has every recommendation and dead letter
        await asyncio.gather(*acks)


class ItemBatchHandler:
    """Publishes a batch of catalogue records to the shared catalogue in Redis."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def handle(self, batch: list[Any]) -> None:
        rt = self.runtime
        valid: list[CatalogItem] = []
        pending = []
        for event in batch:
            item = parse_item(event.value, max_bytes=self.settings.worker.max_event_bytes)
            if isinstance(item, Rejection):
                pending.append(rt.dead_letter(event.value, item.reason, event.message))
            else:
                valid.append(item)
        if valid:
            # model versions with the new items' rows come from `streamrec catalog`
            await rt.catalog.publish(valid)
        await asyncio.gather(*pending)
