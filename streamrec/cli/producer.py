"""Replaying events into Kafka: MovieLens-100K (from the installed recbole package) or JSONL.

MovieLens is read from the installed package at run time (``training.data``) and never copied
into the repository. Ratings become ``rating`` events in timestamp order (ties keep the file's
row order); items become catalogue records with title, genres and year as text.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamrec.core.config import Settings, UserError
from streams.kafka_io import ensure_topics, start_producer
from training.data import movielens_catalog, movielens_ratings


def movielens_items() -> list[dict[str, Any]]:
    """MovieLens catalogue records in the ``items`` contract."""
    return [
        {"item_id": c.item_id, "title": c.title, "text": c.text, "categories": c.categories}
        for c in movielens_catalog()
    ]


def movielens_events() -> list[dict[str, Any]]:
    """MovieLens ratings as ``clicks`` events, sorted stably by timestamp."""
    return [
        {
            "event_id": f"ml-{row_number}",
            "user_id": user,
            "item_id": item,
            "type": "rating",
            "ts": ts * 1000,
            "rating": rating,
        }
        for ts, row_number, user, item, rating in movielens_ratings()
    ]


def read_jsonl(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line:
                yield line


def event_key(raw: bytes) -> bytes | None:
    """The partition key (user_id) of a raw event, or None when it cannot be read."""
    try:
        obj = json.loads(raw)
        user = obj.get("user_id") if isinstance(obj, dict) else None
        return user.encode() if isinstance(user, str) and user else None
    except (ValueError, UnicodeDecodeError):
        return None


async def send_all(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    total: int | None = None,
    rate: float = 0.0,
    progress: bool = True,
    on_sent: Any = None,
) -> int:
    """Send (key, value) records; ``rate`` > 0 paces them; returns the count sent."""
    producer = await start_producer(settings)
    sent = 0
    start = time.perf_counter()
    bar = tqdm(total=total, desc=f"producing {topic}", unit="ev", file=sys.stderr,
               disable=not progress, leave=False)
    try:
        futures = []
        for key, value in records:
            if rate > 0:
                delay = start + sent / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if on_sent is not None:
                on_sent(key, value)
            futures.append(await producer.send(topic, key=key, value=value))
            sent += 1
            bar.update(1)
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        bar.close()
        await producer.stop()
    return sent


async def produce_dataset(
    settings: Settings, dataset: str, *, rate: float = 0.0, limit: int = 0, with_items: bool = True
) -> int:
    if dataset != "ml-100k":
        raise UserError(f"unknown dataset {dataset!r}; available: ml-100k")
    await ensure_topics(settings)
    if with_items:
        items = movielens_items()
        await send_all(
            settings, settings.kafka.items_topic,
            ((i["item_id"].encode(), json.dumps(i).encode()) for i in items), total=len(items),
        )
    events = movielens_events()
    if limit:
        events = events[:limit]
    return await send_all(
        settings, settings.kafka.clicks_topic,
        ((e["user_id"].encode(), json.dumps(e).encode()) for e in events),
        total=len(events), rate=rate,
    )


async def produce_file(settings: Settings, path: Path, *, rate: float = 0.0, limit: int = 0) -> int:
    await ensure_topics(settings)

    def records() -> Iterator[tuple[bytes | None, bytes]]:
        for n, raw in enumerate(read_jsonl(path)):
            if limit and n >= limit:
                return
            yield event_key(raw), raw

    return await send_all(settings, settings.kafka.clicks_topic, records(), rate=rate)
