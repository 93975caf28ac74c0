"""The prequential replay: test-then-learn through the worker's code, metrics, JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.cli import main
from training.replay.data import synthetic_data
from training.replay.prequential import Replayer, ReplayOptions, VariantRun
from training.replay.report import drift_metrics, recovery_events, summarize


def tiny(events: int = 4_000) -> Replayer:
    data = synthetic_data(events=events, warm=1_000, drift_at=2_500, n_users=150, n_items=200)
    return Replayer(data, ReplayOptions(progress=False, train_budget_s=4, finetune_budget_s=4,
                                        retrain_every=1_500, retrain_lag=100, followups=0,
                                        recent_events=2_000))


def test_stream_baselines_are_scored_on_every_click_after_the_first() -> None:
    replayer = tiny()
    first_clicks = len({e.user_id for e in replayer.data.stream})
    for name in ("popular", "covisit", "biased_mf"):
        run = replayer.run(name)
        assert run.unavailable is None
        # every replayed click is scored but each user's first (no list sent yet)
        assert len(run.ranks) == len(replayer.data.stream) - first_clicks
        assert 0.0 <= run.metrics()["hr@10"] <= 1.0
    covisit = replayer.run("covisit").metrics(0, replayer.data.drift_at)
    popular = replayer.run("popular").metrics(0, replayer.data.drift_at)
    assert covisit["hr@10"] > popular["hr@10"]  # the synthetic stream is sequential


def test_recovery_and_drift_metrics() -> None:
    run = VariantRun("x")
    for i in range(3_000):
        hit = i < 1_000 or i >= 1_800  # drops at 1000, back at 1800
        run.positions.append(i)
        run.ranks.append(0.0 if hit else float("inf"))
    assert recovery_events(run, at=1_000, window=100, target=0.9) == 800 + 89
    never = VariantRun("frozen", positions=list(range(3_000)),
                       ranks=[0.0] * 1_000 + [float("inf")] * 2_000)

    class Data:
        name, drift_at, stream, warm = "s", 1_000, [None] * 3_000, []

    run.name = "adaptive"
    run.markers = [{"type": "drift", "index": 400}, {"type": "drift", "index": 1_150}]
    out = drift_metrics(Data, {"frozen": never, "adaptive": run}, window=100)
    assert out["detection_delay_events"] == 150 and out["false_alarms"] == 1
    assert out["recovery"]["frozen"]["recovered"] is False
    assert out["recovery_speedup"] == round(2_000 / 889, 2)
    assert out["recovery_speedup_lower_bound"] is True
    assert summarize(Data, {"frozen": never}, 100)["variants"]["frozen"]["n"] == 3_000


def test_cli_json_last_line_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "hr.png"
    code = main(["replay", "--dataset", "synthetic", "--events", "3000", "--warm", "1000",
                 "--drift-at", "2000", "--users", "100", "--items", "200", "--window", "300",
                 "--variants", "popular,covisit", "--json", "--plot", str(png),
                 "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert set(summary["variants"]) == {"popular", "covisit"}
    assert set(summary["variants"]["covisit"]) >= {"hr@10", "ndcg@10"}
    assert summary["recovery"]["covisit"]["pre_drift_hr@10"] > 0
    assert png.stat().st_size > 10_000
    assert any(line.startswith("covisit") for line in out)


@pytest.mark.slow  # ~30 s on a 2-core machine
def test_adaptive_loop_retrains_and_reports(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("STREAMREC_ARTIFACTS", str(tmp_path))
    replayer = tiny(events=3_500)
    replayer.data.texts = None  # ids only: no text encoder in a unit test
    replayer.settings = replayer.settings.__class__.from_env()
    run = replayer.run("adaptive")
    assert run.unavailable is None
    kinds = [m["type"] for m in run.markers]
    assert "promote" in kinds or "reject" in kinds
    decisions = [m for m in run.markers if m["type"] in ("promote", "reject")]
    assert all("candidate" in m and "live" in m for m in decisions)
    if "promote" in kinds:
        assert "live" in kinds  # the promoted version went live after the lag
