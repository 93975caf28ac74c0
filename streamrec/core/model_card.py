"""The model card: what one published model version is, in one typed record.

Every version directory holds ``model_card.json``. It is written by :func:`write_model_card` and
read by :func:`read_model_card` only; every publisher (training's export, the trainer, the
catalogue refresh, a rollback copy, the testing model) builds a :class:`ModelCard`.

The card is also where serving learns the model's shapes: ``seq_len`` (the length of the
``item_seq`` input) and ``k`` (the length of the ``top_items`` output). A new model is trained
with ``training.model.ModelConfig.max_len`` (default :data:`DEFAULT_SEQ_LEN`) and its card
records it; the client reads the live version's card.

Cards written before this schema are read too: ``created_at`` as an ISO string, ``top_k`` for
``k``, no ``seq_len`` (then the model config's ``max_len``, else :data:`DEFAULT_SEQ_LEN`).

>>> card = ModelCard(n_items=3, seq_len=50, k=3, created_at=0.0, metrics={"hr@10": 0.5})
>>> ModelCard.from_json(card.to_json()) == card
True
>>> ModelCard.from_json({"created_at": "1970-01-01T00:01:00+00:00", "top_k": 10}).created_at
60.0
>>> card.weights_of(7), replace(card, weights_version=2).weights_of(7)
(7, 2)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from streamrec.core.atomic import write_json_atomic

MODEL_CARD_FILE = "model_card.json"
DEFAULT_SEQ_LEN = 50  # the sequence length a new model is trained with (ModelConfig.max_len)


@dataclass(frozen=True)
class ModelCard:
    """One version's facts. ``kind``: ``training``, ``retrain``, ``catalog refresh``,
    ``rollback`` or ``testing``. ``weights_version`` is None when the version has its own
    weights (a catalogue refresh or a rollback copy names the version whose weights it keeps)."""

    n_items: int  # items in the vocabulary (without the padding row)
    seq_len: int  # length of the model's item_seq input
    k: int  # length of the model's top_items output
    kind: str = "training"
    created_at: float | None = field(default_factory=time.time)  # epoch seconds
    parent_version: int | None = None
    weights_version: int | None = None
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    model_name: str = ""
    checkpoint: str | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    valid: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific, e.g. items added
    extra: dict[str, Any] = field(default_factory=dict)  # keys this schema does not know

    @property
    def config_hash(self) -> str:
        """A short hash of the model/training configuration (equal configs, equal hashes)."""
        text = json.dumps(self.config, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def weights_of(self, version: int) -> int:
        """The version whose weights this version (number ``version``) serves."""
        return self.weights_version if self.weights_version is not None else version

    def derived(self, kind: str, parent_version: int, reason: str = "",
                **changes: Any) -> ModelCard:
        """The card of a new version made from this one's weights (refresh, rollback copy)."""
        return replace(self, kind=kind, parent_version=parent_version, reason=reason,
                       weights_version=self.weights_of(parent_version), created_at=time.time(),
                       **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data, "config_hash": self.config_hash}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in known and k not in _LEGACY_KEYS}
        config = data.get("config") or {}
        model_config = config.get("model") if isinstance(config.get("model"), dict) else {}
        values["created_at"] = _epoch_seconds(data.get("created_at"))
        values.setdefault("n_items", int(config.get("n_items", 0)))
        values.setdefault("seq_len", int(model_config.get("max_len", DEFAULT_SEQ_LEN)))
        values.setdefault("k", int(data.get("top_k") or config.get("k") or 0))
        values.setdefault("model_name", data.get("model") or data.get("name") or "")
        if "catalog_refresh" in data:
            values.setdefault("details", data["catalog_refresh"])
        return cls(**values, extra={**data.get("extra", {}), **extra})


_LEGACY_KEYS = {"top_k", "model", "name", "catalog_refresh", "config_hash"}


def _epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO-8601 string (cards written by older exports)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    parsed = dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def write_model_card(version_dir: Path, card: ModelCard) -> None:
    """The one writer of ``model_card.json`` (atomic)."""
    write_json_atomic(version_dir / MODEL_CARD_FILE, card.to_json())


def read_model_card(version_dir: Path) -> ModelCard:
    """The one reader of ``model_card.json``; a version without a readable card reads as a
    card of kind ``unknown``."""
    try:
        data = json.loads((version_dir / MODEL_CARD_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {"kind": "unknown", "created_at": None}
    return ModelCard.from_json(data)
