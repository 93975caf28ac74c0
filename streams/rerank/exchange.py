"""Several workers, one re-ranker: snapshots of its weights, merging, and the Redis exchange.

The re-ranker is not per user: each worker learns from its own partitions' feedback, and every
sync interval the workers exchange snapshots through Redis (:func:`sync_through_redis`: each
writes :func:`to_snapshot` into one hash and merges the others). :func:`merge` averages the
weights, weighted by how many examples each learned since the last sync, so the merged model is
the average of the workers' models, and the item clocks keep the earliest first-seen and latest
last-seen times. Optimizer moments stay local (they describe each worker's own gradient
history). We chose weight averaging over a shared Redis model updated per example because it
costs one round trip per interval instead of one per click.

>>> a, b = OnlineReranker(), OnlineReranker()
>>> _ = a.learn_one({"trend": 1.0}, True)
>>> copy = from_snapshot(to_snapshot(a))
>>> copy.weights == a.weights
True
>>> merged = merge(b, a)                     # one example each since the last sync: the mean
>>> bool(abs(merged.weights["trend"] - (a.weights["trend"] + 0.2) / 2) < 1e-12)
True
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from streams.rerank.reranker import OnlineReranker, RerankConfig


def to_snapshot(reranker: OnlineReranker) -> dict[str, Any]:
    """A JSON-able snapshot: weights, counts, config and the item clock."""
    return {
        "weights": {k: float(v) for k, v in reranker.model._weights.items()},
        "intercept": float(reranker.model.intercept),
        "n_learned": reranker.n_learned,
        "since_sync": reranker.since_sync,
        "config": asdict(reranker.config),
        "first_seen": reranker.clock.first_seen,
        "last_seen": reranker.clock.last_seen,
    }


def from_snapshot(data: dict[str, Any]) -> OnlineReranker:
    """The re-ranker a :func:`to_snapshot` describes (a fresh optimizer, an empty log)."""
    reranker = OnlineReranker(RerankConfig(**data.get("config", {})))
    reranker.model._weights.clear()
    for name, weight in data["weights"].items():
        reranker.model._weights[name] = weight
    reranker.model.intercept = data["intercept"]
    reranker.n_learned = int(data.get("n_learned", 0))
    reranker.since_sync = int(data.get("since_sync", 0))
    reranker.clock.first_seen = dict(data.get("first_seen", {}))
    reranker.clock.last_seen = dict(data.get("last_seen", {}))
    return reranker


def merge(reranker: OnlineReranker, other: OnlineReranker) -> OnlineReranker:
    """Average ``reranker``'s weights with ``other``'s, weighted by the examples each learned
    since the last sync, and merge the item clocks; returns ``reranker``."""
    a, b = max(1, reranker.since_sync), max(1, other.since_sync)
    mine, theirs = reranker.model._weights, other.model._weights
    for name in set(mine) | set(theirs):
        mine[name] = (a * mine.get(name, 0.0) + b * theirs.get(name, 0.0)) / (a + b)
    reranker.model.intercept = (
        a * reranker.model.intercept + b * other.model.intercept) / (a + b)
    reranker.clock.merge(other.clock)
    return reranker


async def sync_through_redis(
    reranker: OnlineReranker, redis: Any, key: str, worker_id: str, ttl_s: int | None = None
) -> int:
    """Publish this worker's snapshot into the hash ``key`` and merge every other worker's.

    Call it on a schedule (the worker: every 30 s). Returns the number of snapshots merged.
    ``ttl_s`` (``redis.worker_ttl_s``): the hash goes away that long after the last worker's
    sync.
    """
    await redis.hset(key, worker_id, json.dumps(to_snapshot(reranker)))
    if ttl_s is not None:
        await redis.expire(key, ttl_s)
    snapshots = await redis.hgetall(key)
    merged = 0
    for other_id, raw in snapshots.items():
        other_id = other_id.decode() if isinstance(other_id, bytes) else other_id
        if other_id == worker_id:
            continue
        merge(reranker, from_snapshot(json.loads(raw)))
        merged += 1
    reranker.since_sync = 0
    return merged
