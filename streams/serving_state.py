"""Redis-backed parts of the worker: the catalogue cache and the hot serving mirror.

Keys (all under ``Settings``' Redis), each with a TTL refreshed on every write:
- ``item:<id>``: hash with ``title``, ``text``, ``categories`` (JSON), ``active``
  (``redis.catalog_ttl_s``);
- ``items:inactive``: set of deactivated item ids (``redis.catalog_ttl_s``);
- ``user:<id>:state`` / ``user:<id>:recs``: JSON mirrors of a user's state summary and latest
  recommendation list (``redis.state_ttl_s``), for consumers that read rather than subscribe;
  :func:`forget_user_keys` deletes them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from streamrec.core.events import CatalogItem, Recommendation
from streams.engine import Catalog
from streams.state import UserState

log = logging.getLogger(__name__)


def item_key(item_id: str) -> str:
    return f"item:{item_id}"


INACTIVE_KEY = "items:inactive"


def state_key(user_id: str) -> str:
    return f"user:{user_id}:state"


def recs_key(user_id: str) -> str:
    return f"user:{user_id}:recs"


def item_to_hash(item: CatalogItem) -> dict[str, str]:
    return {
        "title": item.title,
        "text": item.text,
        "categories": json.dumps(list(item.categories)),
        "active": "1" if item.active else "0",
    }


def item_from_hash(item_id: str, data: dict[Any, Any]) -> CatalogItem:
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in data.items()}
    return CatalogItem(
        item_id=item_id,
        title=d.get("title", ""),
        text=d.get("text", ""),
        categories=tuple(json.loads(d.get("categories", "[]"))),
        active=d.get("active", "1") == "1",
    )


class RedisCatalog(Catalog):
    """The catalogue, shared through Redis and cached in each worker.

    Misses are fetched in one pipeline per batch; the set of deactivated items is re-read at most
    every ``refresh_s`` so a deactivation reaches every worker within that time.
    """

    def __init__(self, redis: Any, refresh_s: float = 0.5,
                 ttl_s: int = 90 * 24 * 3600) -> None:
        super().__init__()
        self.redis = redis
        self.refresh_s = refresh_s
        self.ttl_s = ttl_s  # of item:<id> and items:inactive, from their last write
        self._missing: set[str] = set()
        self._inactive_read_at = 0.0

    async def publish(self, items: Sequence[CatalogItem]) -> None:
        """Write catalogue entries to this worker's cache and to Redis (shared)."""
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            pipe.hset(item_key(item.item_id), mapping=item_to_hash(item))
            pipe.expire(item_key(item.item_id), self.ttl_s)
            if item.active:
                pipe.srem(INACTIVE_KEY, item.item_id)
            else:
                pipe.sadd(INACTIVE_KEY, item.item_id)
            self.update(item)
            self._missing.discard(item.item_id)
        if items:
            pipe.expire(INACTIVE_KEY, self.ttl_s)
        try:
            await pipe.execute()
        except Exception as exc:  # Redis down: this worker still knows the items
            log.warning("catalogue not shared (Redis unavailable): %s", exc)

    async def ensure(self, item_ids: Iterable[str]) -> None:
        wanted = [i for i in item_ids if i not in self.items and i not in self._missing]
        refresh = time.monotonic() - self._inactive_read_at > self.refresh_s
        if not wanted and not refresh:
            return
        pipe = self.redis.pipeline(transaction=False)
        for item_id in wanted:
            pipe.hgetall(item_key(item_id))
        if refresh:
            pipe.smembers(INACTIVE_KEY)
        try:
            results = await pipe.execute()
        except Exception as exc:  # Redis down: serve from what this worker has cached
            log.debug("catalogue lookup failed: %s", exc)
            return
        for item_id, data in zip(wanted, results, strict=False):
            if data:
                self.update(item_from_hash(item_id, data))
            else:
                # unknown to the catalogue so far; asked again once the items topic says more
                self._missing.add(item_id)
        if refresh:
            self.inactive = {m.decode() if isinstance(m, bytes) else m for m in results[-1]}
            self._inactive_read_at = time.monotonic()
            if len(self._missing) > 10_000:
                self._missing.clear()


async def mirror_to_redis(
    redis: Any,
    states: Iterable[UserState],
    recommendations: Sequence[Recommendation],
    ttl_s: int,
    half_life_ms: int,
) -> None:
    """One pipeline: each touched user's state summary and latest list, with a TTL."""
    pipe = redis.pipeline(transaction=False)
    for state in states:
        pipe.set(state_key(state.user_id), json.dumps(state.summary(half_life_ms)), ex=ttl_s)
    latest: dict[str, Recommendation] = {}
    for rec in recommendations:
        latest[rec.user_id] = rec
    for user_id, rec in latest.items():
        pipe.set(recs_key(user_id), json.dumps(rec.to_json()), ex=ttl_s)
    await pipe.execute()


def user_keys(user_id: str) -> list[str]:
    """Every Redis key holding data of one user (what ``streamrec forget`` deletes)."""
    return [state_key(user_id), recs_key(user_id)]


async def forget_user_keys(redis: Any, user_ids: Iterable[str]) -> int:
    """Delete the users' Redis keys; returns how many existed."""
    keys = [key for user_id in user_ids for key in user_keys(user_id)]
    return int(await redis.delete(*keys)) if keys else 0
