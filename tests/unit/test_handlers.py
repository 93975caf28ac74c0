"""The batch handlers are total per record: one record's failure is its own dead letter."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streamrec.core.config import Settings
from streamrec.core.events import CatalogItem, dead_letter
from streams.engine import Catalog, RecommendationEngine
from streams.handlers import ClickBatchHandler, ItemBatchHandler
from streams.signals import InMemorySignals
from streams.state import UserState

T0 = 1_700_000_000_000
POISON = "poison"


class PoisonCatalog(Catalog):
    """A catalogue whose lookup fails for one item: a bug that only one record meets."""

    def categories(self, item_id: str) -> tuple[str, ...]:
        if item_id == POISON:
            raise KeyError(item_id)
        return super().categories(item_id)


class FakeRuntime:
    """What the handlers use of a WorkerRuntime, recording what they send."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.settings = Settings()
        self.engine = RecommendationEngine(
            InMemorySignals(window_ms=3_600_000, hop_ms=60_000), catalog or PoisonCatalog())
        self.catalog = SimpleNamespace(publish=self._publish)
        self.sent: list[tuple[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        self.published: list[str] = []
        self.fail_sends: BaseException | None = None

    async def _publish(self, items: list[CatalogItem]) -> None:
        if any(item.title == POISON for item in items):
            raise ValueError("cannot publish")
        self.published.extend(item.item_id for item in items)

    async def send(self, topic: str, key: bytes | None, value: Any) -> None:
        if self.fail_sends is not None:
            raise self.fail_sends
        self.sent.append((topic, json.loads(value) if isinstance(value, bytes) else value))

    async def send_many(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
        for key, value in messages:
            await self.send(topic, key, value)

    async def dead_letter(self, raw: bytes | None, reason: str, message: Any) -> None:
        self.dead.append(dead_letter(raw, reason, topic=message.topic,
                                     partition=message.partition, offset=message.offset))

    async def mirror(self, states: Any, recommendations: Any) -> None:
        return None

    async def publish_model_events(self) -> list[Any]:
        return []


def record(value: dict[str, Any] | bytes, offset: int) -> SimpleNamespace:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SimpleNamespace(value=raw, message=SimpleNamespace(
        topic="clicks", partition=0, offset=offset, key=b"u"))


def click(i: int, item: str = "i1", user: str = "u1") -> dict[str, Any]:
    return {"event_id": f"e{i}", "user_id": user, "item_id": item, "type": "click",
            "ts": T0 + i}


def test_one_failing_record_is_dead_lettered_and_the_rest_of_the_batch_answered() -> None:
    rt = FakeRuntime()
    users: dict[bytes, Any] = {}
    batch = [record(click(0), 0), record(click(1, POISON), 1), record(b"{", 2),
             record(click(2, "i2"), 3), record(click(3, "i3", user="u2"), 4)]
    asyncio.run(ClickBatchHandler(rt, users).handle(batch))  # type: ignore[arg-type]
    assert sorted(r["event_id"] for _, r in rt.sent) == ["e0", "e2", "e3"]
    reasons = {d["source"]["offset"]: d["reason"] for d in rt.dead}
    assert set(reasons) == {1, 2}
    assert reasons[1] == "handling failed: KeyError: 'poison'"
    assert reasons[2].startswith("malformed JSON")
    # the poison click changed no state; the others each changed it once
    stored = UserState.from_dict(users[b"u1"])
    assert stored.counts == {"click": 2}
    assert stored.recent_event_ids == ["e0", "e2"]


def test_a_failure_of_the_connections_is_not_dead_lettered_but_escapes() -> None:
    rt = FakeRuntime()
    rt.fail_sends = KafkaConnectionError("broker gone")
    with pytest.raises(KafkaConnectionError):
        asyncio.run(ClickBatchHandler(rt, {}).handle([record(click(0), 0)]))  # type: ignore[arg-type]
    assert rt.dead == []


def test_one_unpublishable_item_is_dead_lettered_and_the_others_published() -> None:
    rt = FakeRuntime()
    batch = [record({"item_id": "a"}, 0), record({"item_id": "b", "title": POISON}, 1),
             record({"item_id": 5}, 2), record({"item_id": "c"}, 3)]
    asyncio.run(ItemBatchHandler(rt).handle(batch))  # type: ignore[arg-type]
    assert sorted(rt.published) == ["a", "c"]
    assert sorted(d["source"]["offset"] for d in rt.dead) == [1, 2]
    assert any(d["reason"] == "handling failed: ValueError: cannot publish" for d in rt.dead)
