"""Pruning old model versions: keep the live, the pinned, rollback's target and the newest N."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamrec.cli import main
from streamrec.core import versions
from streamrec.core.model_card import ModelCard, write_model_card


def publish(repository: Path, weights_of: int | None = None) -> int:
    model_dir = repository / "sasrec"
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = versions.staging_dir(model_dir)
    versions.Vocabulary(["a", "b"]).save(staged)
    kind = "training" if weights_of is None else "catalog refresh"
    write_model_card(staged, ModelCard(n_items=2, seq_len=4, k=2, kind=kind,
                                       weights_version=weights_of))
    return versions.publish(model_dir, staged)


def test_versions_to_prune_keeps_live_pinned_protected_and_newest() -> None:
    assert versions.versions_to_prune(range(1, 9), live=8, pinned=None, keep=3) == [1, 2, 3, 4, 5]
    assert versions.versions_to_prune(range(1, 9), live=2, pinned=2, keep=2,
                                      protected=[5]) == [1, 3, 4, 6]
    assert versions.versions_to_prune([3], live=3, pinned=None, keep=2) == []
    with pytest.raises(ValueError):
        versions.versions_to_prune([1, 2, 3], live=3, pinned=None, keep=1)


def test_prune_deletes_only_what_the_plan_says(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for _ in range(4):
        publish(repo)  # 1..4: own weights
    for _ in range(4):
        publish(repo, weights_of=4)  # 5..8: catalogue refreshes of 4's weights
    versions.write_pin(repo, "sasrec", 2, "operator")
    dry = versions.prune(repo, "sasrec", keep=3, dry_run=True)
    assert dry["live"] == 2 and dry["pinned"] == 2 and dry["rollback_target"] == 1
    assert dry["delete"] == [3, 4, 5] and dry["deleted"] == []
    assert versions.list_versions(repo / "sasrec") == list(range(1, 9))

    done = versions.prune(repo, "sasrec", keep=3)
    assert done["deleted"] == [3, 4, 5]
    assert versions.list_versions(repo / "sasrec") == [1, 2, 6, 7, 8]
    assert sorted(p.name for p in (repo / "sasrec").iterdir()) == ["1", "2", "6", "7", "8"]
    assert versions.prune(repo, "sasrec", keep=3)["deleted"] == []  # idempotent


def test_unpinned_prune_keeps_the_rollback_target(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(repo)  # 1
    for _ in range(5):
        publish(repo, weights_of=1)  # 2..6: catalogue refreshes of 1's weights
    publish(repo)  # 7: new weights; rollback goes to 6 (newest with older weights)
    plan = versions.prune_plan(repo, "sasrec", keep=2)
    assert plan["live"] == 7 and plan["rollback_target"] == 6
    assert plan["delete"] == [1, 2, 3, 4, 5]


def test_model_prune_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    for _ in range(7):
        publish(repo)
    monkeypatch.setenv("STREAMREC_TRITON__MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("STREAMREC_TRITON__KEEP_VERSIONS", "3")
    assert main(["model", "prune", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["delete"] == [1, 2, 3, 4]
    assert versions.list_versions(repo / "sasrec") == list(range(1, 8))
    assert main(["model", "prune", "--keep", "5"]) == 0
    assert "deleted 2 version(s) [1, 2]" in capsys.readouterr().out
    assert versions.list_versions(repo / "sasrec") == [3, 4, 5, 6, 7]
    assert main(["model", "prune", "--keep", "1"]) == 2  # below what Triton keeps loaded


def test_publishers_prune_after_publishing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for _ in range(6):
        publish(repo)
    assert versions.prune_after_publish(repo, "sasrec", keep=4) == [1, 2]
    (repo / "sasrec" / "6" / "model_card.json").write_text("{broken")
    assert isinstance(versions.prune_after_publish(repo, "sasrec", keep=2), list)  # no raise
