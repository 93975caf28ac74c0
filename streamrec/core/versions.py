"""Model versions on disk: list them, publish one atomically, read a vocabulary, pin a version.

A model directory (``model_repository/<name>/``) holds numbered version directories. A version
becomes visible to Triton and to the workers only when it is complete: it is built in a hidden
staging directory inside the model directory (same filesystem; Triton ignores names that are not
numbers) and renamed into place. Two publishers never overwrite each other: a rename onto an
existing version fails and the next number is tried.

The pin file (``model_repository/<name>.pin.json``, beside the model directory so that writing it
does not touch what Triton polls) names the version every worker must use; without it the
workers follow the newest version Triton has READY.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core.config import UserError

VOCAB_FILE = "vocab.json"
MODEL_CARD_FILE = "model_card.json"
MODEL_FILE = "model.onnx"
ITEM_TOWER_FILE = "item_tower.onnx"
STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class Vocabulary:
    """Item ids of one model version: ``index_of[item_id]`` -> row (1-based), ``ids[row]``."""

    ids: tuple[str, ...]  # ids[0] is the padding slot ""
    index_of: dict[str, int]

    @classmethod
    def from_items(cls, items: list[str]) -> Vocabulary:
        ids = ("", *items)
        return cls(ids=ids, index_of={item: i for i, item in enumerate(ids) if i > 0})

    @classmethod
    def load(cls, version_dir: Path) -> Vocabulary:
        data = json.loads((version_dir / VOCAB_FILE).read_text())
        return cls.from_items([str(i) for i in data["items"]])

    def __len__(self) -> int:
        return len(self.ids) - 1


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
    """Rename the complete ``staged`` directory to the next free version number; return it."""
    if not (staged / VOCAB_FILE).exists():
        raise ValueError(f"{staged} is not a complete version (no {VOCAB_FILE})")
    number = version if version is not None else (latest_version(model_dir) or 0) + 1
    for _ in range(100):
        target = model_dir / str(number)
        if not target.exists():
            try:
                os.rename(staged, target)
                return number
            except OSError:  # another publisher won the race
                pass
        if version is not None:
            raise FileExistsError(f"version {version} already exists in {model_dir}")
        number += 1
    raise RuntimeError(f"could not publish into {model_dir}")


def discard_staging(staged: Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def read_model_card(version_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((version_dir / MODEL_CARD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


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
        card = read_model_card(staged)
        card.update({"kind": "rollback", "parent_version": version, "created_at": time.time(),
                     "weights_version": card.get("weights_version", version),
                     "reason": reason})
        write_json_atomic(staged / MODEL_CARD_FILE, card)
        return publish(model_dir, staged)
    except BaseException:
        discard_staging(staged)
        raise


def rollback_target(model_repository: Path, model_name: str) -> tuple[int, int]:
    """(current version, version to roll back to: the newest one with older weights)."""
    model_dir = model_repository / model_name
    published = list_versions(model_dir)
    pinned = read_pin(model_repository, model_name)
    current = pinned if pinned in published else (published[-1] if published else None)
    if current is None:
        raise UserError(f"no published version of {model_name}")

    def weights(v: int) -> int:
        return int(read_model_card(model_dir / str(v)).get("weights_version", v))

    for candidate in reversed(published):
        if weights(candidate) < weights(current):
            return current, candidate
    raise UserError(f"nothing to roll back to: no version with weights older than {current}'s")
