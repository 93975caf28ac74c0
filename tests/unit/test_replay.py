"""The prequential replay: test-then-learn through the worker's code, metrics, JSON and plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamrec.cli import main
from training.replay.data import synthetic_data
from training.replay.prequential import MemoModel, Replayer, ReplayOptions, VariantRun
from training.replay.report import (
    aggregate,
    drift_metrics,
    pre_drift_hit_rate,
    recovery_events,
    summarize,
)
from training.replay.runner import ReplaySpec, passes_for, run_seeds


def tiny(events: int = 4_000) -> Replayer:
    data = synthetic_data(events=events, warm=1_000, drift_at=2_500, n_users=150, n_items=200)
    return Replayer(data, ReplayOptions(progress=False, batch_size=1, train_epochs=2,
                                        finetune_epochs=2,
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


def step_run(name: str, drop: int, back: int | None, total: int = 3_000) -> VariantRun:
    """Hits until ``drop``, misses until ``back`` (None: never), hits after."""
    run = VariantRun(name, positions=list(range(total)))
    run.ranks = [0.0 if i < drop or (back is not None and i >= back) else float("inf")
                 for i in range(total)]
    return run


class StepData:
    name, drift_at, stream, warm = "s", 1_000, [None] * 3_000, []
    hittable = np.ones(3_000, dtype=bool)


def test_recovery_counts_hittable_clicks_only() -> None:
    run = step_run("x", drop=1_000, back=1_800)
    every = np.ones(3_000, dtype=bool)
    assert recovery_events(run, every, at=1_000, window=100, target=0.9) == 800 + 89
    # repeats (never hittable) in the recovery stretch are left out, not counted as misses
    hittable = every.copy()
    hittable[1_000:1_800:2] = False
    assert pre_drift_hit_rate(run, hittable, at=1_000, window=100) == 1.0
    assert recovery_events(run, hittable, at=1_000, window=100, target=0.9) == 800 + 89
    # a miss that is a repeat before the drift does not lower the pre-drift level
    run.ranks[990] = float("inf")
    hittable[990] = False
    assert pre_drift_hit_rate(run, hittable, at=1_000, window=100) == 1.0


def test_hittable_marks_first_clicks_of_a_user_on_an_item() -> None:
    data = synthetic_data(events=3_000, warm=1_000, drift_at=2_000, n_users=50, n_items=100)
    seen = {(e.user_id, e.item_id) for e in data.warm}
    expected = []
    for e in data.stream:
        expected.append((e.user_id, e.item_id) not in seen)
        seen.add((e.user_id, e.item_id))
    assert data.hittable.tolist() == expected
    assert 0 < data.hittable.mean() < 1


def test_drift_metrics_alarms_over_the_whole_run_and_speed_ups() -> None:
    adaptive = step_run("adaptive", drop=1_000, back=1_300)
    adaptive.markers = [{"type": "drift", "index": 400}, {"type": "drift", "index": 1_150},
                        {"type": "live", "index": 1_600}, {"type": "drift", "index": 2_500}]
    runs = {"frozen": step_run("frozen", drop=1_000, back=None),
            "covisit": step_run("covisit", drop=1_000, back=1_800),
            "reranked": step_run("reranked", drop=1_000, back=1_700),
            "adaptive": adaptive}
    out = drift_metrics(StepData, runs, window=100)
    # the first alarm at or after the drift detects it; the others, before or after, are false
    assert out["detection_delay_events"] == 150 and out["false_alarms"] == 2
    frozen = out["recovery"]["frozen"]
    assert frozen["recovery_events"] is None and frozen["recovered"] is False
    assert "never within the horizon (2000 events)" == frozen["note"]
    assert out["recovery"]["adaptive"]["recovery_events"] == 389
    assert out["recovery_speedup_vs_covisit"] == round(889 / 389, 2)
    assert out["recovery_speedup_vs_reranked"] == round(789 / 389, 2)
    # against a baseline that never recovers there is no ratio, only a note
    runs["covisit"] = step_run("covisit", drop=1_000, back=None)
    out = drift_metrics(StepData, runs, window=100)
    assert out["recovery_speedup_vs_covisit"] is None
    assert "covisit never recovers" in out["recovery_speedup_vs_covisit_note"]
    summary = summarize(StepData, {"frozen": runs["frozen"]}, 100)
    assert summary["variants"]["frozen"]["n"] == 3_000


def test_seeds_aggregate_means_spread_and_targets() -> None:
    def one(delay: int, alarms: int, covisit: int, adaptive: int | None) -> dict[str, Any]:
        runs = {"covisit": step_run("covisit", drop=1_000, back=1_000 + covisit),
                "adaptive": step_run("adaptive", drop=1_000,
                                     back=None if adaptive is None else 1_000 + adaptive)}
        runs["adaptive"].markers = [{"type": "drift", "index": 1_000 + delay}] + [
            {"type": "drift", "index": 10 * (i + 1)} for i in range(alarms)]
        return summarize(StepData, runs, 100)

    out = aggregate([one(100, 0, 800, 300), one(200, 0, 900, 400)], [0, 1])
    assert out["detection_delay_events"] == 150 and out["false_alarms"] == 0
    per_seed = [round(889 / 389, 2), round(989 / 489, 2)]
    assert out["recovery_speedup_vs_covisit_per_seed"] == per_seed
    assert out["recovery_speedup_vs_covisit"] == round(sum(per_seed) / 2, 4)
    assert out["variants"]["covisit"]["hr@10"]["std"] > 0
    assert out["targets"]["detection_within_500_events"]["met"] is True
    assert out["targets"]["no_false_alarms"]["met"] is True
    out = aggregate([one(100, 1, 800, 300), one(600, 0, 900, None)], [0, 1])
    assert out["targets"]["no_false_alarms"]["met"] is False
    assert out["targets"]["detection_within_500_events"]["met"] is False
    assert out["recovery_speedup_vs_covisit"] is None
    assert out["targets"]["recovery_2x_faster_than_covisit"]["met"] is False
    assert "never within the horizon" in out["recovery"]["adaptive"]["note"]


def test_cli_json_last_line_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "hr.png"
    code = main(["replay", "--dataset", "synthetic", "--events", "3000", "--warm", "1000",
                 "--drift-at", "2000", "--users", "100", "--items", "200", "--window", "300",
                 "--variants", "popular,covisit", "--seeds", "0", "1", "--workers", "1",
                 "--json", "--plot", str(png), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["seeds"] == [0, 1] and len(summary["per_seed"]) == 2
    assert set(summary["variants"]) == {"popular", "covisit"}
    assert set(summary["variants"]["covisit"]["hr@10"]) == {"mean", "std"}
    assert summary["recovery"]["covisit"]["pre_drift_hr@10"]["mean"] > 0
    assert png.stat().st_size > 10_000
    assert any(line.startswith("covisit") for line in out)


def test_passes_run_longest_first_and_on_several_processes() -> None:
    assert passes_for(["covisit", "reranked", "adaptive", "frozen"]) == [
        ("adaptive",), ("frozen", "reranked"), ("covisit",)]
    spec = ReplaySpec("synthetic", ReplayOptions(progress=False),
                      {"events": 2_000, "warm": 500, "drift_at": 1_500, "n_users": 60,
                       "n_items": 100})
    lines: list[str] = []
    runs = run_seeds(spec, [0, 1], ["popular", "covisit"], workers=2, log=lines.append)
    alone = run_seeds(spec, [1], ["covisit"], workers=1)
    assert list(runs) == [0, 1] and list(runs[1]) == ["popular", "covisit"]
    assert runs[1]["covisit"].ranks == alone[1]["covisit"].ranks  # same as in this process
    assert runs[0]["covisit"].ranks != runs[1]["covisit"].ranks  # seeds are other streams
    assert len(lines) == 4 and "(4/4 passes)" in lines[-1]


def test_memo_model_answers_each_question_once() -> None:
    class Counting:
        label, calls = "m", 0

        def recommend(self, sequences: list[list[str]], exclude: list[list[str]],
                      k: int) -> list[list[tuple[str, float]]]:
            self.calls += len(sequences)
            return [[(s[-1], 1.0)] for s in sequences]

    model = Counting()
    memo = MemoModel(model)
    assert memo.recommend([["a"], ["b"]], [[], []], 5) == [[("a", 1.0)], [("b", 1.0)]]
    assert memo.recommend([["b"], ["c"]], [[], []], 5) == [[("b", 1.0)], [("c", 1.0)]]
    assert model.calls == 3 and memo.label == "m"


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


def test_item_text_is_embedded_once_per_replayer(monkeypatch: pytest.MonkeyPatch) -> None:
    import training.text_encoder as text_encoder

    replayer = tiny()
    calls: list[list[str]] = []

    def cached_item_vectors(texts: list[str], *_: Any) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[hash(t) % 1_000] * text_encoder.DIM for t in texts], np.float32)

    monkeypatch.setattr(text_encoder, "cached_item_vectors", cached_item_vectors)
    catalog = [c.item_id for c in replayer.data.catalog]
    texts = replayer.data.texts
    assert texts is not None
    first = replayer.text_vectors_for(catalog[5:8])
    again = replayer.text_vectors_for([catalog[7], catalog[5], "not-in-catalogue"])
    assert len(calls) == 2 and calls[0] == [texts.get(i, "") for i in catalog]
    assert calls[1] == [""]  # an item without text, embedded once when first asked for
    assert first is not None and again is not None
    assert first.shape == (4, text_encoder.DIM) and not first[0].any()  # row 0 = padding
    np.testing.assert_array_equal(again[1], first[3])  # rows follow the asked order
    np.testing.assert_array_equal(again[2], first[1])
