"""Model versions on disk: list them, publish one atomically, read a vocabulary, pin a version.

A model directory (``model_repository/<name>/``) holds numbered version directories. A version
becomes visible to Triton and to the workers only when it is complete: it is built in a hidden
staging directory inside the model directory (same filesystem; Triton ignores names that are not
numbers) and renamed into place (:func:`publish`). Two publishers never overwrite each other: a
rename onto an existing version fails and the next number is tried. Single files are written
with :mod:`streamrec.core.atomic`; the model card is :mod:`streamrec.core.model_card`.

The pin file (``model_repository/<name>.pin.json``, beside the model directory so that writing it
does not touch what Triton polls) names the version every worker must use; without it the
workers follow the newest version. :func:`live_version` is the one rule for "which version is
live".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamrec.core.atomic import write_json_atomic
from streamrec.core.config import UserError
from streamrec.core.model_card import read_model_card, write_model_card

VOCAB_FILE = "vocab.json"
MODEL_FILE = "model.onnx"
ITEM_TOWER_FILE = "item_tower.onnx"
STAGING_PREFIX = ".staging-"

log = logging.getLogger(__name__)


class Vocabulary:
    """Item ids of one model version. Row 0 of every item table is padding, so the item at
    ``items[i]`` is row ``i + 1``; ``len`` counts items, :attr:`table_rows` counts rows.

    >>> vocab = Vocabulary(["a", "b", "c"])
    >>> len(vocab), vocab.table_rows
    (3, 4)
    >>> vocab.index_of["a"], vocab.decode(3)
    (1, 'c')
    >>> vocab.encode(["c", "unknown", "a"])  # unknown ids are dropped
    [3, 1]
    """

    __slots__ = ("index_of", "items")

    def __init__(self, items: Iterable[str]) -> None:
        self.items: tuple[str, ...] = tuple(items)
        self.index_of: dict[str, int] = {item: row for row, item in enumerate(self.items, 1)}

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.items == other.items

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} items)"

    @property
    def table_rows(self) -> int:
        """Rows of an item table for this vocabulary: the items plus the padding row 0."""
        return len(self.items) + 1

    def encode(self, items: Iterable[str]) -> list[int]:
        """Rows of the known ``items``, in order (unknown ids are dropped)."""
        index_of = self.index_of
        return [index_of[i] for i in items if i in index_of]

    def decode(self, row: int) -> str:
        return self.items[row - 1]

    def extended(self, new_items: Iterable[str]) -> Vocabulary:
        """This vocabulary with ``new_items`` appended (rows after the existing ones)."""
        return Vocabulary([*self.items, *(i for i in new_items if i not in self.index_of)])

    def to_json(self) -> dict[str, Any]:
        return {"items": list(self.items)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocabulary:
        return cls(str(i) for i in data["items"])

    @classmethod
    def load(cls, version_dir: Path) -> Vocabulary:
        return cls.from_json(json.loads((version_dir / VOCAB_FILE).read_text()))

    def save(self, version_dir: Path) -> None:
        """Write ``vocab.json`` into ``version_dir`` (atomically)."""
        write_json_atomic(version_dir / VOCAB_FILE, self.to_json(), indent=None)


def list_versions(model_dir: Path) -> list[int]:
    """Published versions, ascending (complete directories whose name is a number)."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / VOCAB_FILE).exists()
    )


def latest_version(model_dir: Path) -> int | None:
    versions = list_versions(model_dir)
    return versions[-1] if versions else None


def staging_dir(model_dir: Path) -> Path:
    """A fresh hidden directory in ``model_dir`` to build a version in."""
    path = model_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def publish(model_dir: Path, staged: Path, version: int | None = None) -> int:
    """Rename the complete ``staged`` directory to the next free version number; return it.

    ``version`` asks for that number exactly (FileExistsError when it is taken).
    """
    if not (staged / VOCAB_FILE).exists():
        raise ValueError(f"{staged} is not a complete version (no {VOCAB_FILE})")
    number = version if version is not None else (latest_version(model_dir) or 0) + 1
    for _ in range(100):
        if rename_into_place(staged, model_dir / str(number)):
            return number
        if version is not None:
            raise FileExistsError(f"version {version} already exists in {model_dir}")
        number += 1
    raise RuntimeError(f"could not publish into {model_dir}")


def rename_into_place(staged: Path, target: Path) -> bool:
    """Rename the directory ``staged`` to ``target`` in one step; False when ``target`` is
    already there (another publisher won). Both must be on one filesystem."""
    if target.exists():
        return False
    try:
        os.rename(staged, target)
    except OSError:
        if target.exists():
            return False
        raise
    return True


def discard_staging(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


# --- pinning -----------------------------------------------------------------------------------
def pin_path(model_repository: Path, model_name: str) -> Path:
    return model_repository / f"{model_name}.pin.json"


def read_pin(model_repository: Path, model_name: str) -> int | None:
    """The pinned version, or None when the workers follow the latest READY version."""
    try:
        data = json.loads(pin_path(model_repository, model_name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    version = data.get("version")
    return int(version) if version is not None else None


def write_pin(
    model_repository: Path, model_name: str, version: int | None, reason: str = ""
) -> None:
    """Pin ``version`` (None removes the pin: follow the latest)."""
    path = pin_path(model_repository, model_name)
    if version is None:
        path.unlink(missing_ok=True)
        return
    write_json_atomic(path, {"version": version, "reason": reason, "pinned_at": time.time()})


# --- which version is live ----------------------------------------------------------------------
def choose_live(candidates: Iterable[int], pinned: int | None) -> int | None:
    """The pinned version when it is a candidate, else the newest candidate.

    >>> choose_live([1, 2, 3], pinned=2), choose_live([1, 3], pinned=2), choose_live([], None)
    (2, 3, None)
    """
    available = set(candidates)
    if pinned is not None and pinned in available:
        return pinned
    return max(available) if available else None


def live_version(
    model_repository: Path, model_name: str, among: Iterable[int] | None = None
) -> int | None:
    """The version the workers use: the pinned one if it is published, else the newest
    published one. ``among`` narrows the candidates (e.g. the versions Triton has READY)."""
    published = list_versions(model_repository / model_name)
    if among is not None:
        published = sorted(set(published) & set(among))
    return choose_live(published, read_pin(model_repository, model_name))


# --- pin and roll back --------------------------------------------------------------------------
# Triton keeps this many versions loaded (version_policy { latest { num_versions: 2 } })
LOADED_VERSIONS = 2


def pin(model_repository: Path, model_name: str, version: int, reason: str) -> int:
    """Pin ``version`` and return the version pinned.

    When Triton no longer keeps ``version`` loaded (it is older than the newest
    :data:`LOADED_VERSIONS`), it is republished as a new version first and that one is pinned.
    """
    model_dir = model_repository / model_name
    published = list_versions(model_dir)
    if version not in published:
        raise UserError(f"{model_name} has no version {version} "
                        f"(published: {published or 'none'})")
    if version not in published[-LOADED_VERSIONS:]:
        version = republish(model_dir, version, reason)
    write_pin(model_repository, model_name, version, reason)
    return version


def republish(model_dir: Path, version: int, reason: str) -> int:
    """Copy ``version`` to a new version number (a rollback Triton can load again)."""
    staged = staging_dir(model_dir)
    try:
        shutil.copytree(model_dir / str(version), staged, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        card = read_model_card(staged).derived("rollback", parent_version=version, reason=reason)
        write_model_card(staged, card)
        return publish(model_dir, staged)
    except BaseException:
        discard_staging(staged)
        raise


def rollback_target(model_repository: Path, model_name: str) -> tuple[int, int]:
    """(current version, version to roll back to: the newest one with older weights)."""
    model_dir = model_repository / model_name
    current = live_version(model_repository, model_name)
    if current is None:
        raise UserError(f"no published version of {model_name}")

    def weights(v: int) -> int:
        return read_model_card(model_dir / str(v)).weights_of(v)

    for candidate in reversed(list_versions(model_dir)):
        if weights(candidate) < weights(current):
            return current, candidate
    raise UserError(f"nothing to roll back to: no version with weights older than {current}'s")


# --- pruning ------------------------------------------------------------------------------------
PRUNED_PREFIX = ".pruned-"


def versions_to_prune(
    published: Iterable[int], *, live: int | None, pinned: int | None, keep: int,
    protected: Iterable[int] = (),
) -> list[int]:
    """The versions to delete: all but the live one, the pinned one, the newest ``keep`` and
    ``protected`` (e.g. rollback's target), ascending.

    >>> versions_to_prune(range(1, 11), live=10, pinned=None, keep=3)
    [1, 2, 3, 4, 5, 6, 7]
    >>> versions_to_prune(range(1, 11), live=4, pinned=4, keep=3, protected=[2])
    [1, 3, 5, 6, 7]
    >>> versions_to_prune([1, 2], live=2, pinned=None, keep=5)
    []
    """
    if keep < LOADED_VERSIONS:
        raise ValueError(f"keep must be at least {LOADED_VERSIONS} (the versions Triton loads)")
    ordered = sorted(set(published))
    kept = set(ordered[-keep:]) | {v for v in (live, pinned) if v is not None} | set(protected)
    return [v for v in ordered if v not in kept]


def prune_plan(model_repository: Path, model_name: str, keep: int) -> dict[str, Any]:
    """What :func:`prune` would do: ``{"live", "pinned", "rollback_target", "keep", "delete"}``."""
    published = list_versions(model_repository / model_name)
    live = live_version(model_repository, model_name)
    pinned = read_pin(model_repository, model_name)
    try:
        target: int | None = rollback_target(model_repository, model_name)[1]
    except (UserError, FileNotFoundError, ValueError):
        target = None
    delete = versions_to_prune(published, live=live, pinned=pinned, keep=keep,
                               protected=[target] if target is not None else [])
    return {"live": live, "pinned": pinned, "rollback_target": target,
            "keep": [v for v in published if v not in delete], "delete": delete}


def prune(model_repository: Path, model_name: str, keep: int,
          dry_run: bool = False) -> dict[str, Any]:
    """Delete old versions (:func:`versions_to_prune`); returns the plan with ``deleted``.

    Each version is first renamed to a hidden name (Triton and :func:`list_versions` stop
    seeing it in one step), then removed; Triton in poll mode unloads it.
    """
    plan = prune_plan(model_repository, model_name, keep)
    deleted: list[int] = []
    if not dry_run:
        model_dir = model_repository / model_name
        for version in plan["delete"]:
            hidden = model_dir / f"{PRUNED_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(model_dir / str(version), hidden)
            except FileNotFoundError:  # another pruner was first
                continue
            shutil.rmtree(hidden, ignore_errors=True)
            deleted.append(version)
    return {**plan, "deleted": deleted, "dry_run": dry_run}


def prune_after_publish(model_repository: Path, model_name: str, keep: int) -> list[int]:
    """:func:`prune` for a publisher (trainer, catalogue service): a failure is logged, never
    raised, since the version it just published is already live. Returns the versions deleted.
    """
    try:
        deleted: list[int] = prune(model_repository, model_name, keep)["deleted"]
    except Exception as exc:  # a half-written card, a permission problem: prune next time
        log.warning("pruning %s failed: %s", model_name, exc)
        return []
    if deleted:
        log.info("pruned %s versions %s (keeping the newest %d)", model_name, deleted, keep)
    return deleted
