"""A new catalogue item becomes recommendable without retraining (catalogue refresh)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from inference import testing_model
from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core import versions
from streamrec.core.events import CatalogItem
from streamrec.core.ports import ModelUnavailable

pytestmark = pytest.mark.timeout(120)

TARGET_S = 60.0


def test_new_item_recommendable_from_its_text(triton: TritonProcess, serving_repo: Path) -> None:
    old_items = testing_model.item_ids(300)
    new_items = [
        CatalogItem("new-1", title="Space Opera", text="a starship crew far from home"),
        CatalogItem("new-2", title="Quiet Village", text="a baker and a letter"),
        CatalogItem("gone", title="withdrawn", active=False),
    ]

    async def run() -> tuple[float, list[str], str]:
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              timeout_s=5.0, watch_interval_s=0.2, catalog_flush_s=0.2)
        client = ModelClient(config, text_encoder=testing_model.HashingTextEncoder())
        async with client:
            started = time.monotonic()
            await client.on_new_items(new_items)
            while time.monotonic() - started < TARGET_S:
                try:
                    answer = await client.recommend([["i1", "i2"]], [old_items], 5)
                except ModelUnavailable:
                    answer = None
                if answer and answer.lists[0]:
                    return (time.monotonic() - started,
                            [i for i, _ in answer.lists[0]], answer.model)
                await asyncio.sleep(0.05)
        raise AssertionError("new items not recommendable in time")

    elapsed, items, label = asyncio.run(run())
    assert label == "sasrec:2"
    assert set(items) == {"new-1", "new-2"}  # every old item was excluded
    assert elapsed < TARGET_S
    card = versions.read_model_card(serving_repo / "sasrec" / "2")
    assert card["kind"] == "catalog refresh" and card["parent_version"] == 1
    vocab = versions.Vocabulary.load(serving_repo / "sasrec" / "2")
    assert vocab.ids[-2:] == ("new-1", "new-2") and "gone" not in vocab.index_of
    print(f"catalogue event -> first possible recommendation: {elapsed:.2f} s")
