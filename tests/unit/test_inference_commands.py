"""``streamrec model list|pin|unpin|rollback`` on a repository, without Triton."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference import testing_model
from streamrec.cli import main
from streamrec.core import versions
from training import catalog


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repository = tmp_path / "model_repository"
    model_dir = testing_model.write_model_repository(repository, n_items=120)
    testing_model.build_version(model_dir, n_items=120, seed=2)
    testing_model.build_version(model_dir, n_items=120, seed=3)
    catalog.refresh_latest(model_dir, {"x1": "new title"}, testing_model.HashingTextEncoder())
    monkeypatch.setenv("STREAMREC_MODEL_REPOSITORY", str(repository))
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
    card = versions.read_model_card(repo / "sasrec" / "5")
    assert card["kind"] == "rollback" and card["weights_version"] == 2
    assert main(["model", "rollback"]) == 0  # from weights 2 to weights 1
    pinned = versions.read_pin(repo, "sasrec")
    assert versions.read_model_card(repo / "sasrec" / str(pinned))["weights_version"] == 1
    assert main(["model", "rollback"]) == 2  # nothing older
