"""Drift detection on the hit stream: drops are alarms, noise and rises are not."""

from __future__ import annotations

import random

import pytest

from streams.drift import DriftConfig, HitRateDriftDetector


def bernoulli(rng: random.Random, p: float, n: int) -> list[bool]:
    return [rng.random() < p for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_abrupt_drop_detected_within_500_events_without_false_alarms(seed: int) -> None:
    rng = random.Random(seed)
    d = HitRateDriftDetector()
    warm = [rng.random() < min(0.3, 0.05 + i / 8_000) for i in range(20_000)]
    assert not any(d.update(h).drift_detected for h in warm)  # rising, then stationary
    fired = [i for i, h in enumerate(bernoulli(rng, 0.1, 2_000)) if d.update(h).drift_detected]
    assert fired and fired[0] < 500
    assert d.detections[0].before > 0.25 and d.detections[0].after < 0.75 * 0.3


def test_a_rise_is_not_an_alarm() -> None:
    rng = random.Random(7)
    d = HitRateDriftDetector(warmup=0)
    for h in bernoulli(rng, 0.1, 3_000) + bernoulli(rng, 0.4, 3_000):
        d.update(h)
    assert d.detections == []


def test_cooldown_one_drift_one_alarm_and_reset() -> None:
    rng = random.Random(1)
    d = HitRateDriftDetector(config=DriftConfig(cooldown=5_000))
    for h in bernoulli(rng, 0.4, 5_000) + bernoulli(rng, 0.05, 3_000):
        d.update(h)
    assert len(d.detections) == 1
    d.reset()
    assert not d.drift_detected


def test_a_version_switch_leaves_no_blind_stretch() -> None:
    rng = random.Random(3)
    d = HitRateDriftDetector(warmup=0)
    for h in bernoulli(rng, 0.4, 5_000):
        d.update(h)
    d.reset()  # a new version went live: a new reference, no cooldown
    for h in bernoulli(rng, 0.4, 400):
        d.update(h)
    fired = [i for i, h in enumerate(bernoulli(rng, 0.05, 1_000)) if d.update(h).drift_detected]
    assert fired and fired[0] < 500  # detected within 500 events, 400 after the switch


def test_one_drift_one_alarm_through_the_recovery() -> None:
    """The replay's shape: an abrupt fall, a low stretch, then the climb back as the system
    learns. The confirming average still mixes the old level for one ``recent_window`` after
    the alarm (the default cooldown); after that nothing fires again: one drift, one alarm."""
    for seed in range(4):
        rng = random.Random(seed)
        d = HitRateDriftDetector(warmup=0)
        stream = bernoulli(rng, 0.5, 5_000) + bernoulli(rng, 0.05, 1_500)
        stream += [rng.random() < 0.05 + 0.45 * i / 4_000 for i in range(4_000)]
        stream += bernoulli(rng, 0.5, 3_000)
        for h in stream:
            d.update(h)
        assert len(d.detections) == 1, (seed, [x.at for x in d.detections])
        assert 5_000 < d.detections[0].at < 5_500
