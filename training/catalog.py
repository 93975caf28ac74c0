"""New items become recommendable without retraining: a catalogue refresh publishes version N+1.

For items that arrive on the ``items`` topic with text, :func:`refresh_catalog`

1. embeds the text with the one text encoder (the exported MiniLM ONNX file, in-process
   onnxruntime; any object with ``encode(texts) -> [n, 384]`` can stand in),
2. runs the version's ``item_tower.onnx`` to turn text vectors into item rows,
3. appends the rows to the ``item_embeddings`` initializer of ``model.onnx`` with the ``onnx``
   package (no torch) and checks that the new rows are scored,
4. extends ``vocab.json`` and writes a model card naming the parent version ("catalog refresh"),
5. publishes the result atomically as the next version (same weights otherwise).

The catalogue service (``streamrec catalog``, :mod:`training.catalog_service`) is the one caller
in a deployment. Triton (poll mode) loads the new version and the workers' clients switch to it.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamrec.core import versions
from streamrec.core.model_card import MODEL_CARD_FILE, read_model_card, write_model_card

log = logging.getLogger(__name__)

TABLE = "item_embeddings"
_NOT_COPIED = {versions.MODEL_FILE, versions.VOCAB_FILE, MODEL_CARD_FILE, "__pycache__"}


class TextEncoderLike(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_text_encoder(model_repository: Path) -> TextEncoderLike:
    """The exported MiniLM (``model_repository/text_encoder/1``), run with onnxruntime."""
    from training.text_encoder import TextEncoder, text_encoder_dir

    directory = text_encoder_dir(model_repository)
    if not (directory / "model.onnx").exists():
        raise FileNotFoundError(f"no text encoder at {directory}; run `streamrec train` first")
    return TextEncoder(directory)


def item_rows(version_dir: Path, text_vectors: np.ndarray) -> np.ndarray:
    """The version's item tower applied to text vectors: [n, 384] -> [n, d]."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(version_dir / versions.ITEM_TOWER_FILE), providers=["CPUExecutionProvider"]
    )
    (rows,) = session.run(["item_vectors"], {"text_vectors": text_vectors.astype(np.float32)})
    return np.asarray(rows, dtype=np.float32)


def append_item_rows(model: Any, rows: np.ndarray) -> int:
    """Append ``rows`` to the ``item_embeddings`` initializer of an ``onnx.ModelProto`` in place;
    returns the table's old row count (the index of the first new row)."""
    from onnx import numpy_helper

    graph = model.graph
    table = next((t for t in graph.initializer if t.name == TABLE), None)
    if table is None:
        raise ValueError(f"model.onnx has no initializer named {TABLE!r}")
    old = numpy_helper.to_array(table)
    if rows.shape[1] != old.shape[1]:
        raise ValueError(f"item tower gives {rows.shape[1]}-d rows, the table is {old.shape[1]}-d")
    others = [t.name for t in graph.initializer
              if t.name != TABLE and old.shape[0] in tuple(t.dims)]
    if others:
        raise ValueError(
            f"initializers {others} are sized by the item table too (a folded copy?): "
            "appending rows to item_embeddings would not make new items scoreable"
        )
    table.CopyFrom(numpy_helper.from_array(np.concatenate([old, rows.astype(old.dtype)]), TABLE))
    # shapes recorded at export time may name the old table size; they are optional
    del graph.value_info[:]
    return int(old.shape[0])


def check_new_rows_scored(model_path: Path, first_new: int, seq_len: int) -> None:
    """Run the edited model once: with every old item excluded, its top item must be new."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    item_seq = np.zeros((1, seq_len), dtype=np.int64)
    item_seq[0, -1] = 1
    exclude = np.arange(first_new, dtype=np.int64).reshape(1, -1)
    top_items, top_scores = session.run(
        ["top_items", "top_scores"], {"item_seq": item_seq, "exclude_items": exclude}
    )
    if not (top_items[0, 0] >= first_new and np.isfinite(top_scores[0, 0])):
        raise ValueError("the appended item rows are not scored by model.onnx")


def refresh_catalog(
    version_dir: Path, new_items: dict[str, str], encoder: TextEncoderLike | None = None,
    *, model_repository: Path | None = None,
) -> int | None:
    """Publish version N+1 = ``version_dir`` + ``new_items`` ({item_id: text}); return N+1,
    or None when every item is already in the vocabulary."""
    import onnx

    version_dir = Path(version_dir)
    model_dir = version_dir.parent
    vocab = versions.Vocabulary.load(version_dir)
    fresh = {i: t for i, t in new_items.items() if i not in vocab.index_of}
    if not fresh:
        return None
    started = time.perf_counter()
    if encoder is None:
        encoder = default_text_encoder(model_repository or model_dir.parent)
    ids = list(fresh)
    rows = item_rows(version_dir, np.asarray(encoder.encode([fresh[i] for i in ids])))
    model = onnx.load(str(version_dir / versions.MODEL_FILE))
    first_new = append_item_rows(model, rows)
    if first_new != vocab.table_rows:
        raise ValueError(f"vocab.json has {len(vocab)} items but the table {first_new - 1} rows")
    staged = versions.staging_dir(model_dir)
    try:
        for source in version_dir.iterdir():
            if source.name not in _NOT_COPIED:
                copy = shutil.copytree if source.is_dir() else shutil.copy2
                copy(source, staged / source.name)
        card = read_model_card(version_dir)
        onnx.save(model, str(staged / versions.MODEL_FILE))
        check_new_rows_scored(staged / versions.MODEL_FILE, first_new, card.seq_len)
        extended = vocab.extended(ids)
        extended.save(staged)
        parent = int(version_dir.name)
        write_model_card(staged, card.derived(
            "catalog refresh", parent, n_items=len(extended),
            details={"added": len(ids), "items_before": len(vocab),
                     "items_after": len(extended), "sample": ids[:10]},
        ))
        version = versions.publish(model_dir, staged)
    except BaseException:
        versions.discard_staging(staged)
        raise
    log.info("catalogue refresh: %s:%d -> %d (+%d items) in %.2f s", model_dir.name, parent,
             version, len(ids), time.perf_counter() - started)
    return version


@contextmanager
def _catalog_lock(model_dir: Path) -> Iterator[None]:
    """One catalogue refresh at a time across processes sharing the repository."""
    lock_path = model_dir.parent / f".{model_dir.name}.catalog.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_version(model_dir: Path, model_repository: Path | None = None) -> int | None:
    """The version a catalogue refresh extends: the live one
    (:func:`streamrec.core.versions.live_version`); None when nothing is published yet."""
    return versions.live_version(model_repository or model_dir.parent, model_dir.name)


def refresh_latest(
    model_dir: Path, new_items: dict[str, str], encoder: TextEncoderLike | None = None,
    *, model_repository: Path | None = None,
) -> int | None:
    """Refresh the version in use (:func:`base_version`) under a lock.

    When a version is pinned, the pin moves to the refreshed version (same weights, more items).
    """
    repository = model_repository or model_dir.parent
    with _catalog_lock(model_dir):
        pinned = versions.read_pin(repository, model_dir.name)
        base = base_version(model_dir, repository)
        if base is None:
            raise FileNotFoundError(f"no published version in {model_dir}")
        version = refresh_catalog(model_dir / str(base), new_items, encoder,
                                  model_repository=repository)
        if version is not None and pinned is not None:
            versions.write_pin(repository, model_dir.name, version,
                               reason=f"catalog refresh of pinned version {pinned}")
        return version
