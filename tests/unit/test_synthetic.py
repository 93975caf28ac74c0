"""The synthetic drifting stream: reproducible, drifts when told, scales."""

from __future__ import annotations

import time
from collections import Counter

from training.synthetic import DriftSpec, SyntheticConfig, SyntheticStream, abrupt_drift_stream


def cluster_share_of_new(stream: SyntheticStream, events: list) -> float:
    new = set(stream.new_items())
    return sum(e.item_id in new for e in events) / max(1, len(events))


def test_reproducible_and_time_ordered() -> None:
    a = [e.to_json() for e in abrupt_drift_stream(events=2_000, n_users=100, n_items=300).events()]
    b = [e.to_json() for e in abrupt_drift_stream(events=2_000, n_users=100, n_items=300).events()]
    assert a == b
    assert all(x["ts"] < y["ts"] for x, y in zip(a, a[1:], strict=False))
    assert len({e["event_id"] for e in a}) == len(a)


def test_abrupt_drift_moves_users_to_new_items_at_the_switch() -> None:
    stream = abrupt_drift_stream(events=4_000, drift_at=2_000, n_users=200, n_items=400)
    events = list(stream.events())
    assert cluster_share_of_new(stream, events[:2_000]) == 0.0
    assert cluster_share_of_new(stream, events[2_000:2_500]) > 0.9


def test_gradual_drift_ramps() -> None:
    config = SyntheticConfig(n_users=300, n_items=400, events=8_000,
                             drifts=[DriftSpec(at=2_000, duration=4_000)], seed=3)
    stream = SyntheticStream(config)
    events = list(stream.events())
    early = cluster_share_of_new(stream, events[2_000:3_000])
    late = cluster_share_of_new(stream, events[5_000:6_000])
    assert 0.0 < early < late
    assert cluster_share_of_new(stream, events[7_000:]) > 0.9


def test_partial_share_keeps_the_others_home() -> None:
    config = SyntheticConfig(n_users=400, n_items=400, events=6_000,
                             drifts=[DriftSpec(at=1_000, share=0.5)], seed=2)
    stream = SyntheticStream(config)
    after = list(stream.events())[3_000:]
    assert 0.3 < cluster_share_of_new(stream, after) < 0.7


def test_sequential_pattern_and_catalogue_text() -> None:
    stream = abrupt_drift_stream(events=3_000, n_users=50, n_items=200)
    catalog = stream.catalog()
    assert len(catalog) == 200 and all(item.text and item.categories for item in catalog)
    # the same user's consecutive items repeat as pairs (co-visitation has something to learn)
    last: dict[str, str] = {}
    pairs: Counter[tuple[str, str]] = Counter()
    for e in stream.events():
        if e.user_id in last:
            pairs[(last[e.user_id], e.item_id)] += 1
        last[e.user_id] = e.item_id
    assert pairs.most_common(1)[0][1] >= 5


def test_scale_one_million_users_one_hundred_thousand_items() -> None:
    started = time.monotonic()
    config = SyntheticConfig(n_users=1_000_000, n_items=100_000, n_clusters=64, events=50_000,
                             drifts=[DriftSpec(at=25_000)])
    stream = SyntheticStream(config)
    events = list(stream.events())
    assert len(events) == 50_000
    assert len(stream.catalog_texts()) == 100_000
    assert max(int(e.user_id[1:]) for e in events) > 100_000
    assert time.monotonic() - started < 30
