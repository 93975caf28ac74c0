"""A new catalogue item becomes recommendable without retraining.

The one catalogue service (``streamrec catalog``) consumes ``items`` from the real broker and
publishes the next version with the new items' rows; Triton loads it and a worker's client, which
only follows versions, switches to it and scores the new items.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from inference import testing_model
from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core import versions
from streamrec.core.config import Settings
from streamrec.core.events import CatalogItem
from streamrec.core.model_card import read_model_card
from streamrec.core.ports import ModelAnswer, ModelUnavailable
from streams.kafka_io import ensure_topics, start_consumer, start_producer
from tests.support import wait_until_async
from training.catalog_service import CATALOG_REFRESH, CatalogRefresher, CatalogService

pytestmark = [pytest.mark.timeout(180)]

TARGET_S = 60.0  # item on the topic -> first possible recommendation


def service_settings(kafka_bootstrap: str, repo: Path, home: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env(
        home=home,
        kafka={"bootstrap_servers": kafka_bootstrap, "profile": "embedded",
               "items_topic": f"items-{tag}", "model_events_topic": f"model-events-{tag}"},
        triton={"model_repository": repo},
        worker={"app_id": f"streamrec-test-{tag}"},
    )


def test_catalogue_service_publishes_and_the_client_follows(
    triton: TritonProcess, serving_repo: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = service_settings(kafka_bootstrap, serving_repo, tmp_path / "home")
    model_dir = serving_repo / "sasrec"
    old_items = testing_model.item_ids(300)
    new_items = [
        CatalogItem("new-1", title="Space Opera", text="a starship crew far from home"),
        CatalogItem("new-2", title="Quiet Village", text="a baker and a letter"),
        CatalogItem("gone", title="withdrawn", text="never mind", active=False),
        CatalogItem("i7", title="already known", text="version 1 has it"),
    ]
    service = CatalogService(
        settings, CatalogRefresher(serving_repo, "sasrec", testing_model.HashingTextEncoder()),
        flush_s=0.2,
    )

    async def run() -> tuple[float, ModelAnswer, list[dict[str, Any]]]:
        await ensure_topics(settings, [settings.kafka.items_topic,
                                       settings.kafka.model_events_topic])
        publishing = asyncio.create_task(service.run(max_versions=1))
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              timeout_s=5.0, watch_interval_s=0.2)
        try:
            async with ModelClient(config) as client:
                await wait_until_async(lambda: client.live is not None, 30, "version 1 live")
                producer = await start_producer(settings)
                try:
                    started = time.monotonic()
                    for item in new_items:
                        await producer.send_and_wait(settings.kafka.items_topic,
                                                     json.dumps(item.to_json()).encode(),
                                                     key=item.item_id.encode())
                finally:
                    await producer.stop()

                def service_state() -> str:
                    return (f"published: {service.published}, pending: "
                            f"{service.refresher.pending}, task done: {publishing.done()}")

                await wait_until_async(lambda: 2 in versions.list_versions(model_dir), TARGET_S,
                                       "the catalogue service published version 2",
                                       diagnose=service_state)

                async def new_items_scored() -> ModelAnswer | None:
                    try:
                        answer = await client.recommend([["i1", "i2"]], [old_items], 5)
                    except ModelUnavailable:
                        return None
                    return answer if answer.lists[0] else None

                answer = await wait_until_async(new_items_scored, TARGET_S,
                                                "the client scores the new items")
                elapsed = time.monotonic() - started
            await asyncio.wait_for(publishing, 30)
            events = await read_catalog_events(settings)
        finally:
            publishing.cancel()
        return elapsed, answer, events

    elapsed, answer, events = asyncio.run(run())
    assert answer.model == "sasrec:2"
    assert {item for item, _ in answer.lists[0]} == {"new-1", "new-2"}  # old items excluded
    assert elapsed < TARGET_S
    assert versions.list_versions(model_dir) == [1, 2]  # one version for the whole burst
    card = read_model_card(model_dir / "2")
    assert card.kind == "catalog refresh" and card.parent_version == 1
    vocab = versions.Vocabulary.load(model_dir / "2")
    # appended after the old items (their order is the topic's, which spans partitions)
    assert set(vocab.items[-2:]) == {"new-1", "new-2"} and "gone" not in vocab.index_of
    assert len(vocab) == 302
    assert [(e["type"], e["version"], e["added"]) for e in events] == [(CATALOG_REFRESH, 2, 2)]
    print(f"catalogue event -> first possible recommendation: {elapsed:.2f} s")


async def read_catalog_events(settings: Settings) -> list[dict[str, Any]]:
    """The ``catalog_refresh`` events on ``model-events`` (waits for the first one)."""
    consumer = await start_consumer(settings, settings.kafka.model_events_topic)
    events: list[dict[str, Any]] = []
    try:
        async def some_read() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                events.extend(json.loads(m.value) for m in messages)
            return bool(events)

        await wait_until_async(some_read, 30, "a catalog_refresh event on model-events")
    finally:
        await consumer.stop()
    return [e for e in events if e.get("type") == CATALOG_REFRESH]
