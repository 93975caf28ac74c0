"""What a replay needs: warm-up events, the scored stream, the catalogue and its time scales."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from streamrec.core.events import CatalogItem, ClickEvent
from streams.rerank import RerankConfig
from streams.state import StateConfig
from training.data import Interactions


@dataclass
class ReplayData:
    """What a replay needs: warm-up events, the scored stream, the catalogue, time scales."""

    name: str
    warm: list[ClickEvent]
    stream: list[ClickEvent]
    catalog: list[CatalogItem]
    texts: dict[str, str] | None
    drift_at: int | None = None  # index in ``stream`` of the injected drift
    trending_window_ms: int = 24 * 3600 * 1000
    trending_hop_ms: int = 3600 * 1000
    state: StateConfig = field(default_factory=StateConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)

    @cached_property
    def hittable(self) -> np.ndarray:
        """[len(stream)] bool: the click's item is new to its user (not in any earlier click,
        warm-up included). Only such a click can be a hit: the lists exclude seen items."""
        seen: set[tuple[str, str]] = {(e.user_id, e.item_id) for e in self.warm}
        out = np.zeros(len(self.stream), dtype=bool)
        for i, e in enumerate(self.stream):
            key = (e.user_id, e.item_id)
            out[i] = key not in seen
            seen.add(key)
        return out

    def interactions(self, events: Sequence[ClickEvent]) -> Interactions:
        return Interactions([e.user_id for e in events], [e.item_id for e in events],
                            [e.ts for e in events])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for e in self.warm:
            h.update(f"{e.user_id}\t{e.item_id}\t{e.ts}\n".encode())
        return h.hexdigest()[:12]


def movielens_data() -> ReplayData:
    """MovieLens-100K: the first half of the events warms up, the second half is replayed."""
    from training.data import movielens_catalog, movielens_interactions

    data = movielens_interactions()
    events = [ClickEvent(f"ml-{i}", u, it, "rating", t)
              for i, (u, it, t) in enumerate(zip(data.users, data.items, data.ts, strict=True))]
    half = len(events) // 2
    texts = movielens_catalog()
    catalog = [CatalogItem(c.item_id, title=c.title, text=c.text,
                           categories=tuple(c.categories)) for c in texts]
    day = 24 * 3600 * 1000
    return ReplayData(
        "ml-100k", events[:half], events[half:], catalog, {c.item_id: c.text for c in texts},
        trending_window_ms=7 * day, trending_hop_ms=day,
        state=StateConfig(session_gap_ms=day, interest_half_life_ms=30 * day),
        rerank=RerankConfig(recency_half_life_ms=7 * day, age_half_life_ms=30 * day,
                            interest_half_life_ms=30 * day),
    )


def synthetic_data(events: int = 35_000, warm: int = 15_000, drift_at: int = 20_000,
                   seed: int = 0, n_users: int = 2_000, n_items: int = 1_000) -> ReplayData:
    """The abrupt-drift stream: ``warm`` events warm up, the drift comes at ``drift_at``."""
    from training.synthetic import abrupt_drift_stream

    stream = abrupt_drift_stream(events=events, drift_at=drift_at, seed=seed,
                                 n_users=n_users, n_items=n_items)
    all_events = list(stream.events())
    texts = stream.catalog_texts()
    step = stream.config.step_ms
    return ReplayData(
        "synthetic", all_events[:warm], all_events[warm:], stream.catalog(),
        {t.item_id: t.text for t in texts}, drift_at=drift_at - warm,
        # time scales in events: trending over ~1,000 events, interest over ~2,000
        trending_window_ms=1_000 * step, trending_hop_ms=100 * step,
        state=StateConfig(session_gap_ms=3_000 * step, interest_half_life_ms=2_000 * step),
        rerank=RerankConfig(recency_half_life_ms=500 * step, age_half_life_ms=5_000 * step,
                            interest_half_life_ms=2_000 * step),
    )
