"""The drift benchmark's timeline: which alarm is the drift's, which version answers it, and
the phases measured from the first post-drift click (``streamrec bench drift``)."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.cli.bench_drift import PHASES, DriftBenchOptions, DriftTimeline, format_table
from streamrec.core.config import UserError

STEP_MS = 1_000


def timeline() -> DriftTimeline:
    t = DriftTimeline("sasrec", drift_index=1_000, start_ts=0, step_ms=STEP_MS)
    t.drift_sent_at = 100.0
    return t


def drift(index: int, at_s: float) -> dict[str, Any]:
    # ``at`` is the wall clock of the worker that raised the alarm (ms)
    return {"type": "drift", "at": int(at_s * 1000), "ts": index * STEP_MS, "request": "retrain",
            "at_update": 7}


def test_a_promoted_drift_retrain_that_served_is_live_with_every_phase() -> None:
    t = timeline()
    t.learn_model_event({"type": "catalog_refresh", "at": 90_000, "model": "sasrec:2"}, 90.1)
    t.learn_recommendation({"event_id": "e1", "model": "sasrec:2"}, 95.0)
    t.learn_model_event(drift(1_150, 104.0), 104.0)
    t.learn_model_event({"type": "retrain", "at": 106_000, "reason": "drift"}, 190.0)
    t.learn_model_event({"type": "promote", "at": 180_000, "model": "sasrec:3"}, 190.1)
    assert t.new_version == "sasrec:3" and not t.live and t.status() == "promoted, not served yet"
    t.triton_ready_at = 195.0
    t.learn_recommendation({"event_id": "e2", "model": "sasrec:3"}, 197.5)
    t.learn_recommendation({"event_id": "e3", "model": "sasrec:3"}, 199.0)
    assert t.live and t.status() == "live"
    assert t.phases() == {"drift_detected_s": 4.0, "retrain_started_s": 6.0,
                          "published_s": 80.0, "triton_ready_s": 95.0,
                          "first_recommendation_s": 97.5}
    assert t.first_served["sasrec:3"] == (197.5, "e2")
    assert t.detection_delay_events() == 150 and t.false_alarms() == 0


def test_alarms_before_the_drift_are_false_and_their_retrains_are_not_the_answer() -> None:
    t = timeline()
    t.learn_model_event(drift(900, 95.0), 95.0)  # before the drift: a false alarm
    t.learn_model_event({"type": "retrain", "at": 96_000}, 150.0)
    t.learn_model_event(drift(1_080, 103.0), 103.0)  # the drift's alarm, during that retrain
    t.learn_model_event({"type": "promote", "at": 149_000, "model": "sasrec:3"}, 150.1)
    assert t.false_alarms() == 1 and t.detection_delay_events() == 80
    assert t.new_version is None and t.status() == "no retrain started"
    t.learn_model_event({"type": "retrain", "at": 151_000}, 160.0)
    assert t.status() == "retraining"
    t.learn_model_event({"type": "reject", "at": 159_000, "gate": {"reason": "no gain"}}, 160.1)
    assert t.status() == "1 candidate(s) rejected" and t.new_version is None
    assert t.phases()["retrain_started_s"] == 51.0 and t.phases()["published_s"] is None
    # a follow-up retrain on fresher clicks passes: its version is the answer (its decision
    # may arrive first: model-events has several partitions)
    t.learn_model_event({"type": "promote", "at": 169_000, "model": "sasrec:4",
                         "timing": {"fine_tune_s": 5.0}}, 170.0)
    t.learn_model_event({"type": "retrain", "at": 160_000}, 170.1)
    assert t.new_version == "sasrec:4" and t.phases()["published_s"] == 69.0
    assert t.phases()["retrain_started_s"] == 51.0  # the first retrain after the alarm
    summaries = t.retrain_summaries()
    assert [r["decision"] for r in summaries] == ["reject", "promote"]
    assert summaries[1]["started_s"] == 60.0 and summaries[1]["timing"] == {"fine_tune_s": 5.0}


def test_repeated_recommendations_count_once_and_nothing_is_timed_before_the_drift() -> None:
    t = DriftTimeline("sasrec", drift_index=10, start_ts=0, step_ms=STEP_MS)
    t.learn_recommendation({"event_id": "e1", "model": "fallback"}, 1.0)
    t.learn_recommendation({"event_id": "e1", "model": "sasrec:2"}, 2.0)  # a redelivery
    assert t.answered == {"e1"} and set(t.first_served) == {"fallback"}
    assert t.phases() == dict.fromkeys(PHASES) and t.status() == "no drift detected"


def test_the_table_shows_unreached_phases_and_the_verdict() -> None:
    phases = dict.fromkeys(PHASES)
    phases["drift_detected_s"] = 3.0
    report = {"rate_eps": 50.0, "machine": {"cpus": 2, "load_avg_1m": 3.0}, "phases": phases,
              "drift_to_live_s": None, "met": False, "target_s": 300.0,
              "status": "candidate rejected", "detection_delay_events": 120,
              "false_alarms": 0, "new_version": None, "retrain": None,
              "retrains": [{"started_s": 5.0, "decided_s": 90.0, "decision": "reject",
                            "events": 2000, "window": "regime",
                            "gate": {"reason": "does not beat live"}}],
              "trainer": {"cooldown_s": 600.0, "finetune_budget_s": 120.0,
                          "min_regime_events": 2000, "recent_events": 50000}}
    table = format_table(report)
    assert "NOT met; candidate rejected" in table and "drift detected" in table
    assert "reject at t+90.0 s, does not beat live" in table


def test_options_reject_what_cannot_run() -> None:
    DriftBenchOptions().check()
    assert DriftBenchOptions(warm_events=100, live_events=50).drift_at == 150
    with pytest.raises(UserError):
        DriftBenchOptions(rate=0).check()
    with pytest.raises(UserError):
        DriftBenchOptions(warm_events=10).check()
