"""The Redis signal store gives what the in-memory one gives for the same events."""

from __future__ import annotations

import asyncio
import random

import redis.asyncio as aioredis

from streams.signals import InMemorySignals, RedisSignals, Transition

HOUR = 3_600_000


def test_redis_and_in_memory_signals_agree(redis_url: str) -> None:
    rng = random.Random(3)
    batches = []
    prev = None
    for b in range(30):
        batch = []
        for j in range(20):
            item = f"i{rng.randrange(40)}"
            batch.append(Transition(item, b * HOUR // 4 + j, previous_item=prev))
            prev = item if rng.random() < 0.8 else None
        batches.append(batch)

    async def run() -> None:
        client = aioredis.from_url(redis_url)
        shared = RedisSignals(client, window_ms=3 * HOUR, hop_ms=HOUR, refresh_s=0)
        local = InMemorySignals(window_ms=3 * HOUR, hop_ms=HOUR)
        for batch in batches:
            now = max(t.ts for t in batch)
            anchors = {t.item_id for t in batch[:5]}
            a = await shared.observe_and_fetch(batch, anchors, now)
            b = await local.observe_and_fetch(batch, anchors, now)
            assert a.trending == b.trending
            assert a.covisited == b.covisited
        await client.aclose()

    asyncio.run(run())
