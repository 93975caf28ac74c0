"""The retraining loop's decisions, without servers or torch: when to retrain (the policy),
whether a candidate goes live (the gate) and whether it stays live (the watch)."""

from __future__ import annotations

from training.gate import PromotionGate, PromotionWatch
from training.retrain_policy import RetrainPolicy


def test_policy_drift_schedule_and_cooldown() -> None:
    p = RetrainPolicy(schedule_every=100, cooldown=30)
    assert p.decide(10) is None
    p.learn_one({"type": "hit_rate"})
    assert p.decide(20) is None
    p.learn_one({"type": "drift", "request": "retrain"})
    assert p.decide(25) == "drift"
    p.learn_one({"type": "drift"})
    assert p.decide(40) is None  # cooldown: the request waits ...
    assert p.decide(56) == "drift"  # ... and is served once it is over
    assert p.decide(155) is None and p.decide(157) == "schedule"


def test_gate_needs_cases_and_a_clear_win() -> None:
    gate = PromotionGate(metric="ndcg@10", min_gain=0.05, min_cases=20)
    live = {"ndcg@10": 0.20, "n_cases": 100}
    assert not gate.decide({"ndcg@10": 0.5, "n_cases": 5}, live).promote
    assert not gate.decide({"ndcg@10": 0.205, "n_cases": 100}, live).promote
    assert gate.decide({"ndcg@10": 0.25, "n_cases": 100}, live).promote
    assert gate.decide({"ndcg@10": 0.01, "n_cases": 100}, None).promote


def test_watch_keeps_a_version_that_holds_up() -> None:
    w = PromotionWatch(window=500)
    w.learn_one({"type": "hit_rate", "versions": {"m:1": {"n": 1000, "hits": 300}}})
    w.start(new="m:2", previous="m:1")
    w.learn_one({"type": "hit_rate", "versions": {"m:2": {"n": 300, "hits": 10}}})
    assert w.decide() is None  # not enough outcomes yet
    w.learn_one({"type": "hit_rate", "versions": {"m:2": {"n": 300, "hits": 170}}})
    assert w.decide() == "keep"
