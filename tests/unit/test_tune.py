"""The Optuna study: its first trial is the current defaults, it resumes from its journal file,
and it reports each trial's stop reason."""

from __future__ import annotations

from pathlib import Path

from training.tune import defaults, run_study


def test_study_starts_from_the_defaults_and_resumes_from_its_journal(tmp_path: Path) -> None:
    journal = tmp_path / "study.log"
    first = run_study("ml-100k", 2, 1, 25, storage=journal)
    assert first["trials"][0]["params"] == defaults()
    assert first["defaults_valid_ndcg@10"] == first["trials"][0]["value"]
    assert len(first["trials"]) == 2
    assert all(t["stop_reason"] == "epochs" and t["epochs_run"] == 1 for t in first["trials"])
    assert first["best_valid_ndcg@10"] == max(t["value"] for t in first["trials"])
    resumed = run_study("ml-100k", 3, 1, 25, storage=journal)
    assert [t["number"] for t in resumed["trials"]] == [0, 1, 2]
    assert resumed["trials"][:2] == first["trials"]
