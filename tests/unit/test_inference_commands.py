"""``streamrec model list|pin|unpin|rollback`` on a repository, without Triton."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inference import testing_model
from streamrec.cli import main
from streamrec.core import versions
from streamrec.core.model_card import (
    MODEL_CARD_FILE,
    ModelCard,
    read_model_card,
    write_model_card,
)
from training import catalog


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repository = tmp_path / "model_repository"
    model_dir = testing_model.write_model_repository(repository, n_items=120)
    testing_model.build_version(model_dir, n_items=120, seed=2)
    testing_model.build_version(model_dir, n_items=120, seed=3)
    catalog.refresh_latest(model_dir, {"x1": "new title"}, testing_model.HashingTextEncoder())
    monkeypatch.setenv("STREAMREC_TRITON__MODEL_REPOSITORY", str(repository))
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRITON_URL", "")
    return repository


def test_list_pin_unpin(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "list", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in table["versions"]] == [1, 2, 3, 4]
    assert table["versions"][-1]["kind"] == "catalog refresh" and table["live"] == 4
    assert main(["model", "pin", "3"]) == 0
    assert versions.read_pin(repo, "sasrec") == 3
    assert main(["model", "pin", "99"]) == 2  # a one-line user error
    assert main(["model", "unpin"]) == 0
    assert versions.read_pin(repo, "sasrec") is None


def test_rollback_skips_catalog_refreshes_and_republishes_unloaded_versions(repo: Path) -> None:
    # live: 4 = catalogue refresh of 3; the previous weights are version 2, which Triton no
    # longer keeps loaded (latest 2 = 3, 4): it is republished as 5 and pinned
    assert main(["model", "rollback"]) == 0
    assert versions.read_pin(repo, "sasrec") == 5
    card = read_model_card(repo / "sasrec" / "5")
    assert card.kind == "rollback" and card.weights_version == 2 and card.parent_version == 2
    assert main(["model", "rollback"]) == 0  # from weights 2 to weights 1
    pinned = versions.read_pin(repo, "sasrec")
    assert read_model_card(repo / "sasrec" / str(pinned)).weights_version == 1
    assert main(["model", "rollback"]) == 2  # nothing older


def test_model_list_reads_a_card_written_by_an_older_export(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `streamrec train` used to write created_at as an ISO string and top_k for k;
    # `model list` crashed on it with a TypeError
    card_path = repo / "sasrec" / "1" / MODEL_CARD_FILE
    card_path.write_text(json.dumps({
        "model": "sasrec", "created_at": "2026-01-02T03:04:05+00:00", "parent_version": None,
        "checkpoint": "artifacts/checkpoints/x.pt", "seed": 0, "metrics": {"ndcg@10": 0.1},
        "config": {"model": {"max_len": 50}}, "top_k": 100, "n_items": 120,
    }))
    card = read_model_card(repo / "sasrec" / "1")
    assert card.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert (card.k, card.seq_len, card.kind, card.model_name) == (100, 50, "training", "sasrec")
    assert main(["model", "list"]) == 0
    first_row = capsys.readouterr().out.splitlines()[1][2:].split()
    assert first_row[:2] == ["1", "training"] and "ndcg@10=0.1000" in first_row


def test_the_model_card_round_trips_and_keeps_unknown_keys(tmp_path: Path) -> None:
    card = ModelCard(n_items=3, seq_len=20, k=3, metrics={"hr@10": 0.5},
                     config={"model": {"dim": 8}}, extra={"owner": "team-a"})
    write_model_card(tmp_path, card)
    on_disk = json.loads((tmp_path / MODEL_CARD_FILE).read_text())
    assert on_disk["owner"] == "team-a" and on_disk["config_hash"] == card.config_hash
    assert read_model_card(tmp_path) == card
    derived = card.derived("catalog refresh", parent_version=4, n_items=5)
    assert (derived.weights_version, derived.parent_version, derived.n_items) == (4, 4, 5)
    assert derived.config_hash == card.config_hash
