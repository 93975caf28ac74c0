"""The catalogue service's core publishes new items as versions; a follower switches to them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inference import testing_model
from inference.live_version import LiveVersion, VersionFollower
from streamrec.core import versions
from streamrec.core.events import CatalogItem
from streamrec.core.model_card import read_model_card
from training.catalog_service import CatalogRefresher, CatalogVersion


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    testing_model.build_version(tmp_path / "sasrec", n_items=120)
    return tmp_path


def refresher(repo: Path) -> CatalogRefresher:
    return CatalogRefresher(repo, "sasrec", testing_model.HashingTextEncoder())


def test_only_new_active_items_with_text_are_pending(repo: Path) -> None:
    core = refresher(repo)
    core.follow_live()
    for item in [
        CatalogItem("n1", title="Red Fox", text="a fox in the snow"),
        CatalogItem("i5", title="Known", text="already in version 1"),
        CatalogItem("n2", categories=("Drama",)),  # no title or text: nothing to embed
        CatalogItem("n3", title="Withdrawn", text="soon gone"),
        CatalogItem("n3", active=False),
        CatalogItem("n4", title="Inactive", active=False),
    ]:
        core.learn_one(item)
    assert set(core.pending) == {"n1"}
    assert "Red Fox" in core.pending["n1"] and "fox in the snow" in core.pending["n1"]


def test_publish_appends_the_rows_as_the_next_version_once(repo: Path) -> None:
    core = refresher(repo)
    core.learn_one(CatalogItem("n1", title="Red Fox")).learn_one(CatalogItem("n2", text="owl"))
    published = core.publish()
    assert published == CatalogVersion(version=2, parent=1, added=["n1", "n2"])
    assert core.pending == {}
    vocab = versions.Vocabulary.load(repo / "sasrec" / "2")
    assert len(vocab) == 122 and vocab.items[-2:] == ("n1", "n2")
    card = read_model_card(repo / "sasrec" / "2")
    assert card.kind == "catalog refresh" and card.parent_version == 1
    # the new version is live now: the same items again are known, nothing to publish
    core.learn_one(CatalogItem("n1", title="Red Fox"))
    assert core.pending == {} and core.publish() is None
    assert versions.list_versions(repo / "sasrec") == [1, 2]


def test_a_failed_publish_keeps_the_items_for_the_next_try(tmp_path: Path) -> None:
    core = refresher(tmp_path)  # nothing published yet
    core.learn_one(CatalogItem("n1", title="Red Fox"))
    with pytest.raises(FileNotFoundError):
        core.publish()
    assert set(core.pending) == {"n1"}
    testing_model.build_version(tmp_path / "sasrec", n_items=120)
    published = core.publish()
    assert published is not None and published.version == 2 and published.added == ["n1"]


def test_the_follower_switches_to_a_published_version_and_obeys_the_pin(repo: Path) -> None:
    ready = {1}
    switches: list[tuple[int, int]] = []

    async def ready_versions() -> set[int]:
        return set(ready)

    follower = VersionFollower(repo, "sasrec", ready_versions,
                               on_switch=lambda old, new: switches.append((old.version,
                                                                           new.version)))

    async def run() -> list[LiveVersion | None]:
        seen = [await follower.refresh()]
        refresher(repo).learn_one(CatalogItem("n1", title="Red Fox")).publish()
        seen.append(await follower.refresh())  # published but not READY yet: stay
        ready.add(2)
        seen.append(await follower.refresh())
        versions.write_pin(repo, "sasrec", 1, reason="test")
        seen.append(await follower.refresh())
        return seen

    seen = asyncio.run(run())
    assert [live.version if live else None for live in seen] == [1, 1, 2, 1]
    assert switches == [(1, 2), (2, 1)]
    live = seen[2]
    assert live is not None and "n1" in live.vocab.index_of and live.label == "sasrec:2"
    assert live.seq_len == read_model_card(repo / "sasrec" / "2").seq_len
