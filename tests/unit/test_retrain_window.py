"""After a drift a retrain trains on the new regime, not on a window that is mostly the old."""

from __future__ import annotations

from training.retrain_policy import RetrainPolicy


def test_without_a_drift_the_window_is_the_last_recent_events() -> None:
    p = RetrainPolicy()
    assert p.training_window(list(range(1_000)), recent_events=300, min_events=50) == 700
    assert p.training_window(list(range(100)), recent_events=300, min_events=50) == 0


def test_after_a_drift_the_window_starts_at_the_drift_with_a_floor() -> None:
    ts = [10 * i for i in range(1_000)]  # event i at time 10 i
    p = RetrainPolicy().learn_one({"type": "drift", "request": "retrain", "ts": 9_000})
    # 100 events since the drift: extended back to the floor of 300
    assert p.training_window(ts, recent_events=800, min_events=300) == 700
    # a later drift: 50 events since it, floor 20 -> the regime alone
    p.learn_one({"type": "drift", "request": "retrain", "ts": 9_500})
    assert p.training_window(ts, recent_events=800, min_events=20) == 950
    # a regime longer than recent_events is capped by it
    p.learn_one({"type": "drift", "request": "retrain", "ts": 500})
    assert p.training_window(ts, recent_events=800, min_events=20) == 200


def test_requests_without_event_time_and_the_off_switch_keep_the_recent_window() -> None:
    ts = list(range(1_000))
    p = RetrainPolicy().learn_one({"type": "retrain", "request": "retrain"})
    assert p.regime_since_ts is None
    assert p.training_window(ts, recent_events=400, min_events=10) == 600
    p.learn_one({"type": "drift", "request": "retrain", "ts": 990})
    assert p.training_window(ts, recent_events=400, min_events=0) == 600


def test_a_scheduled_retrain_after_a_drift_keeps_the_recent_window() -> None:
    ts = list(range(1_000))
    p = RetrainPolicy().learn_one({"type": "drift", "request": "retrain", "ts": 900})
    assert p.training_window(ts, recent_events=400, min_events=10, reason="followup") == 900
    assert p.training_window(ts, recent_events=400, min_events=10, reason="schedule") == 600


def test_a_regime_too_thin_to_judge_falls_back_to_the_recent_window() -> None:
    from training.data import Interactions

    # 40 users, 10 events each, in time order; a drift at event 360 leaves 40 events since it
    users = [f"u{i % 40}" for i in range(400)]
    recent = Interactions(users, [f"i{i % 17}" for i in range(400)], list(range(400)))
    p = RetrainPolicy().learn_one({"type": "drift", "request": "retrain", "ts": 360})
    events, window = p.training_events(recent, recent_events=300, min_events=40,
                                       reason="drift", min_cases=5)
    assert window == "recent" and len(events) == 300  # 40 events: nobody has 3 in them
    events, window = p.training_events(recent, recent_events=300, min_events=200,
                                       reason="drift", min_cases=5)
    assert window == "regime" and len(events) == 200 and events.ts[0] == 200
