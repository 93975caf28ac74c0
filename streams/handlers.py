"""What the worker does with a batch of records: the logic behind the Faust agents.

- :class:`ClickBatchHandler`: validates a batch of ``clicks``, runs the engine, writes the
  ``user-state`` table, sends one recommendation per event and mirrors states and lists to Redis.
- :class:`ItemBatchHandler`: publishes valid ``items`` records to the shared catalogue in Redis.

Bad input never stops a worker. Invalid records of either topic go to the dead-letter topic
with a reason (parsing is total). Handling is total per record too: a batch is handled in one
go (one engine call, one table pass, one gather of sends); if that raises, the batch is handled
again one record at a time, and each record whose handling raises becomes a dead letter with
the exception as its reason while the others are answered. Only failures of the worker's
connections (:data:`INFRASTRUCTURE_ERRORS`: Kafka, sockets, timeouts) are not the record's
fault: they escape, the agent crashes and the worker exits for its supervisor to restart it,
with the batch unacknowledged (at-least-once). A batch that falls back to one record at a time
may have fed its valid records to the shared signals (trending, co-visitation) and the
re-ranker's feedback twice; per-user state is never updated twice (repeats are recognised by
``event_id``).

Delivery is at-least-once: a handler returns (and Faust's ``take_events`` acknowledges the
batch) only once the broker has acknowledged every recommendation and dead letter of the batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, MutableMapping, Sequence
from typing import Any

import redis.exceptions
from aiokafka.errors import KafkaError

from streamrec.core.events import CatalogItem, ClickEvent, Rejection, parse_click, parse_item
from streams.runtime import WorkerRuntime
from streams.state import UserState

log = logging.getLogger(__name__)

# failures of the worker's connections, not of a record: they crash the agent (and the worker
# exits), so the batch is read again after a restart instead of being dead-lettered
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # sockets, ConnectionError, TimeoutError (asyncio's too)
    KafkaError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# a recommendation larger than this is refused like a bad record (the producer's request limit
# is 1 MiB): a catalogue of huge titles must not make a click unsendable and crash the worker
MAX_RECOMMENDATION_BYTES = 900 * 1024


def failure_reason(exc: BaseException) -> str:
    """The dead-letter reason for a record whose handling raised ``exc``.

    >>> failure_reason(KeyError("x"))
    "handling failed: KeyError: 'x'"
    """
    return f"handling failed: {type(exc).__name__}: {exc}"


class ClickBatchHandler:
    """Validates a batch, runs the engine, writes the table, sends and mirrors the results."""

    def __init__(self, runtime: WorkerRuntime, users: MutableMapping[bytes, Any]) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.users = users

    async def handle(self, batch: list[Any]) -> None:
        rt = self.runtime
        limits = self.settings.worker
        acks: list[Awaitable[Any]] = []
        valid: list[tuple[Any, ClickEvent]] = []
        for event in batch:
            parsed = parse_click(
                event.value,
                max_bytes=limits.max_event_bytes,
                max_id_length=limits.max_id_length,
                max_future_skew_ms=limits.max_future_skew_ms,
            )
            if isinstance(parsed, ClickEvent):
                valid.append((event, parsed))
            else:
                acks.append(rt.dead_letter(event.value, parsed.reason, event.message))
        if valid:
            acks.extend(await self._answer_each_or_dead_letter(valid))
        # at-least-once: the batch is acknowledged (take_events acks after this returns) only
        # once the broker has every recommendation and dead letter
        await asyncio.gather(*acks)

    async def _answer_each_or_dead_letter(
        self, valid: list[tuple[Any, ClickEvent]]
    ) -> list[Awaitable[Any]]:
        """The sends answering ``valid``: in one go, else one record at a time."""
        try:
            return await self._answer([e for _, e in valid])
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            if len(valid) == 1:
                return [self._dead_letter(*valid[0], exc)]
            log.warning("a batch of %d clicks failed (%r): handling them one by one",
                        len(valid), exc)
        acks: list[Awaitable[Any]] = []
        for record, event in valid:
            try:
                acks.extend(await self._answer([event]))
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:
                acks.append(self._dead_letter(record, event, exc))
        return acks

    def _dead_letter(self, record: Any, event: ClickEvent, exc: Exception) -> Awaitable[Any]:
        log.warning("click %r dead-lettered: %r", event.event_id[:64], exc)
        return self.runtime.dead_letter(record.value, failure_reason(exc), record.message)

    async def _answer(self, events: Sequence[ClickEvent]) -> list[Awaitable[Any]]:
        """Run the engine on ``events``, write the table and return the pending sends.

        Everything that can fail because of a record (state, engine, serialisation) happens
        here, before anything is sent or written to the table.
        """
        rt = self.runtime
        states: dict[str, UserState] = {}
        for user_id in {e.user_id for e in events}:
            stored = self.users.get(user_id.encode())
            if stored is not None:
                states[user_id] = UserState.from_dict(stored)
        recommendations = await rt.engine.process_batch(events, states)
        updated = {user_id: state.to_dict() for user_id, state in states.items()}
        payloads = [(rec.user_id.encode(), _encode(rec.to_json())) for rec in recommendations]
        for user_id, value in updated.items():
            self.users[user_id.encode()] = value
        topic = self.settings.kafka.recommendations_topic
        acks: list[Awaitable[Any]] = [rt.send_many(topic, payloads),
                                      rt.mirror(states.values(), recommendations)]
        acks.extend(await rt.publish_model_events())
        return acks


def _encode(value: dict[str, Any]) -> bytes:
    data = json.dumps(value).encode()
    if len(data) > MAX_RECOMMENDATION_BYTES:
        raise ValueError(f"recommendation of {len(data)} bytes exceeds the "
                         f"{MAX_RECOMMENDATION_BYTES}-byte limit")
    return data


class ItemBatchHandler:
    """Publishes a batch of catalogue records to the shared catalogue in Redis."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def handle(self, batch: list[Any]) -> None:
        rt = self.runtime
        valid: list[tuple[Any, CatalogItem]] = []
        pending: list[Awaitable[Any]] = []
        for event in batch:
            item = parse_item(
                event.value,
                max_bytes=self.settings.worker.max_event_bytes,
                max_id_length=self.settings.worker.max_id_length,
            )
            if isinstance(item, Rejection):
                pending.append(rt.dead_letter(event.value, item.reason, event.message))
            else:
                valid.append((event, item))
        if valid:
            # model versions with the new items' rows come from `streamrec catalog`
            pending.extend(await self._publish_each_or_dead_letter(valid))
        await asyncio.gather(*pending)

    async def _publish_each_or_dead_letter(
        self, valid: list[tuple[Any, CatalogItem]]
    ) -> list[Awaitable[Any]]:
        """Publish ``valid`` in one go, else one item at a time; dead letters for the rest."""
        try:
            await self.runtime.catalog.publish([item for _, item in valid])
            return []
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            if len(valid) == 1:
                return [self._dead_letter(valid[0][0], exc)]
            log.warning("a batch of %d items failed (%r): publishing them one by one",
                        len(valid), exc)
        dead: list[Awaitable[Any]] = []
        for record, item in valid:
            try:
                await self.runtime.catalog.publish([item])
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:
                dead.append(self._dead_letter(record, exc))
        return dead

    def _dead_letter(self, record: Any, exc: Exception) -> Awaitable[Any]:
        return self.runtime.dead_letter(record.value, failure_reason(exc), record.message)
