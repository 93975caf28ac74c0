"""Recommenders computed from the stream itself: trending items and item-to-item co-visitation.

Both are *shared* state (not per user): with several workers each sees only its partitions of
``clicks``, so the production store keeps them in Redis with atomic increments
(:class:`RedisSignals`); every worker reads the same counts. :class:`InMemorySignals` has the
same semantics in one process (prequential replay, unit tests). Both run on event time.

>>> t = TrendingCounter(window_ms=3_600_000, hop_ms=600_000)
>>> for ts in (0, 1, 2):
...     t.learn_one("a", ts)
>>> t.learn_one("b", 5)
>>> t.predict_one(now_ts=10, k=2)
[('a', 3.0), ('b', 1.0)]
>>> c = CoVisitation()
>>> c.learn_one("a", "b"); c.learn_one("a", "b"); c.learn_one("a", "c")
>>> c.predict_one("a", k=2)
[('b', 2.0), ('c', 1.0)]
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transition:
    """One valid click as the shared signals see it."""

    item_id: str
    ts: int
    # the user's previous item when it was in the same session (a co-visitation pair)
    previous_item: str | None = None


@dataclass(slots=True)
class SignalSnapshot:
    """What the signals say for one batch: trending now, and co-visited items per anchor."""

    trending: list[tuple[str, float]]
    covisited: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


class StreamSignals(Protocol):
    async def observe_and_fetch(
        self, transitions: Sequence[Transition], anchors: set[str], now_ts: int
    ) -> SignalSnapshot:
        """Count the batch's transitions, then read trending and co-visitation for anchors."""
        ...


class TrendingCounter:
    """Counts per item over an event-time hopping window (``window_ms`` long, ``hop_ms`` step)."""

    def __init__(self, window_ms: int, hop_ms: int) -> None:
        self.window_ms = window_ms
        self.hop_ms = hop_ms
        self.buckets: dict[int, Counter[str]] = defaultdict(Counter)

    def learn_one(self, item_id: str, ts: int) -> None:
        self.buckets[ts // self.hop_ms][item_id] += 1

    def window_buckets(self, now_ts: int) -> range:
        last = now_ts // self.hop_ms
        n = max(1, self.window_ms // self.hop_ms)
        return range(last - n + 1, last + 1)

    def predict_one(self, now_ts: int, k: int) -> list[tuple[str, float]]:
        total: Counter[str] = Counter()
        for bucket in self.window_buckets(now_ts):
            total.update(self.buckets.get(bucket, {}))
        self._forget_before(self.window_buckets(now_ts).start)
        return [(item, float(n)) for item, n in _top(total, k)]

    def _forget_before(self, bucket: int) -> None:
        for old in [b for b in self.buckets if b < bucket]:
            del self.buckets[old]


class CoVisitation:
    """Directed counts of "item B followed item A within a session"."""

    def __init__(self, max_neighbours: int = 200) -> None:
        self.max_neighbours = max_neighbours
        self.pairs: dict[str, Counter[str]] = defaultdict(Counter)

    def learn_one(self, previous_item: str, item_id: str) -> None:
        if previous_item == item_id:
            return
        neighbours = self.pairs[previous_item]
        neighbours[item_id] += 1
        if len(neighbours) > 2 * self.max_neighbours:
            self.pairs[previous_item] = Counter(dict(neighbours.most_common(self.max_neighbours)))

    def predict_one(self, item_id: str, k: int) -> list[tuple[str, float]]:
        return [(i, float(n)) for i, n in _top(self.pairs.get(item_id, Counter()), k)]


def _top(counts: Counter[str], k: int) -> list[tuple[str, int]]:
    # ties broken by item id so every store returns the same order
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class InMemorySignals:
    """Trending + co-visitation in one process (replay, tests)."""

    def __init__(self, window_ms: int, hop_ms: int, top_n: int = 50) -> None:
        self.trending = TrendingCounter(window_ms, hop_ms)
        self.covisitation = CoVisitation()
        self.top_n = top_n

    def observe(self, transitions: Sequence[Transition]) -> None:
        for t in transitions:
            self.trending.learn_one(t.item_id, t.ts)
            if t.previous_item is not None:
                self.covisitation.learn_one(t.previous_item, t.item_id)

    def fetch(self, anchors: set[str], now_ts: int) -> SignalSnapshot:
        return SignalSnapshot(
            trending=self.trending.predict_one(now_ts, self.top_n),
            covisited={a: self.covisitation.predict_one(a, self.top_n) for a in anchors},
        )

    async def observe_and_fetch(
        self, transitions: Sequence[Transition], anchors: set[str], now_ts: int
    ) -> SignalSnapshot:
        self.observe(transitions)
        return self.fetch(anchors, now_ts)


class RedisSignals:
    """The same signals in Redis, shared by every worker.

    Keys: ``trend:<bucket>`` sorted sets (item -> count) per event-time hop (TTL
    ``bucket_ttl_s``), and ``covis:<item>`` sorted sets (next item -> count; TTL
    ``covis_ttl_s`` from the last transition out of the item). One pipeline per batch writes
    the counts and reads the co-visitation neighbours of the batch's anchor items. The trending
    top list is aggregated inside Redis (ZUNIONSTORE over the window's hops, then the top
    ``top_n``) when the event-time hop changes or ``refresh_s`` of wall time has passed, so only
    ``top_n`` items cross the wire.
    """

    def __init__(
        self,
        redis: Any,
        window_ms: int,
        hop_ms: int,
        top_n: int = 50,
        refresh_s: float = 0.5,
        bucket_ttl_s: int = 3 * 24 * 3600,
        prefix: str = "",
        covis_ttl_s: int = 14 * 24 * 3600,
    ) -> None:
        self.redis = redis
        self.window = TrendingCounter(window_ms, hop_ms)  # only for its bucket arithmetic
        self.top_n = top_n
        self.refresh_s = refresh_s
        self.bucket_ttl_s = bucket_ttl_s
        self.covis_ttl_s = covis_ttl_s
        self.prefix = prefix
        self._scratch = f"{prefix}trend:window:{uuid.uuid4().hex[:12]}"
        self._trending: list[tuple[str, float]] = []
        self._trending_key: tuple[int, float] = (-1, 0.0)

    def _trend_key(self, bucket: int) -> str:
        return f"{self.prefix}trend:{bucket}"

    def _covis_key(self, item_id: str) -> str:
        return f"{self.prefix}covis:{item_id}"

    async def observe_and_fetch(
        self, transitions: Sequence[Transition], anchors: set[str], now_ts: int
    ) -> SignalSnapshot:
        pipe = self.redis.pipeline(transaction=False)
        touched: set[int] = set()
        anchors_seen: set[str] = set()
        for t in transitions:
            bucket = t.ts // self.window.hop_ms
            pipe.zincrby(self._trend_key(bucket), 1, t.item_id)
            touched.add(bucket)
            if t.previous_item is not None and t.previous_item != t.item_id:
                pipe.zincrby(self._covis_key(t.previous_item), 1, t.item_id)
                anchors_seen.add(t.previous_item)
        for bucket in touched:
            pipe.expire(self._trend_key(bucket), self.bucket_ttl_s)
        # a co-visitation list lives covis_ttl_s after its last transition (wall clock)
        for item in anchors_seen:
            pipe.expire(self._covis_key(item), self.covis_ttl_s)
        ordered_anchors = sorted(anchors)
        for anchor in ordered_anchors:
            pipe.zrange(self._covis_key(anchor), 0, self.top_n - 1, desc=True, withscores=True)
        refresh = self._needs_refresh(now_ts)
        if refresh:
            keys = [self._trend_key(b) for b in self.window.window_buckets(now_ts)]
            pipe.zunionstore(self._scratch, keys)
            # one extra row so ties at the cut are broken by id exactly as in memory
            pipe.zrange(self._scratch, 0, 4 * self.top_n - 1, desc=True, withscores=True)
            pipe.expire(self._scratch, 60)
        results = await pipe.execute()
        covis_end = len(results) - (3 if refresh else 0)
        covis_results = results[covis_end - len(ordered_anchors) : covis_end]
        covisited = {}
        for anchor, rows in zip(ordered_anchors, covis_results, strict=True):
            covisited[anchor] = _ranked(rows, self.top_n)
        if refresh:
            self._trending = _ranked(results[-2], self.top_n)
            self._trending_key = (now_ts // self.window.hop_ms, time.monotonic())
        return SignalSnapshot(trending=list(self._trending), covisited=covisited)

    def _needs_refresh(self, now_ts: int) -> bool:
        bucket, at = self._trending_key
        return bucket != now_ts // self.window.hop_ms or time.monotonic() - at > self.refresh_s


def _ranked(rows: list[tuple[Any, float]], k: int) -> list[tuple[str, float]]:
    pairs = [(_s(i), float(n)) for i, n in rows]
    return sorted(pairs, key=lambda kv: (-kv[1], kv[0]))[:k]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class FailoverSignals:
    """Shared signals with a local shadow: when Redis fails, answer from this worker's own view.

    Every batch is also counted locally (cheap, bounded by the window), so during a Redis outage
    the worker keeps recommending from the trending and co-visitation of its own partitions,
    and goes back to the shared counts as soon as Redis answers again.
    """

    def __init__(self, primary: StreamSignals, local: InMemorySignals) -> None:
        self.primary = primary
        self.local = local
        self.failures = 0
        self.degraded = False

    async def observe_and_fetch(
        self, transitions: Sequence[Transition], anchors: set[str], now_ts: int
    ) -> SignalSnapshot:
        self.local.observe(transitions)
        try:
            snapshot = await self.primary.observe_and_fetch(transitions, anchors, now_ts)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self._fail(exc)
            return self.local.fetch(anchors, now_ts)
        except Exception as exc:  # redis' own error classes
            if type(exc).__module__.startswith("redis"):
                self._fail(exc)
                return self.local.fetch(anchors, now_ts)
            raise
        if self.degraded:
            log.warning("shared signals are back: using Redis again")
        self.degraded = False
        return snapshot

    def _fail(self, exc: BaseException) -> None:
        self.failures += 1
        if not self.degraded:
            log.warning("shared signals unavailable (%s): using this worker's own", exc)
        self.degraded = True
