"""Export a trained checkpoint as a Triton model version, published atomically.

One version directory ``<repo>/<model>/<N>/`` holds (docs/CONTRACTS.md):

- ``model.onnx``: ``item_seq`` [B, 50] + ``exclude_items`` [B, E] -> ``top_items`` [B, K],
  ``top_scores`` [B, K]; scoring and top-K inside the graph; the fused item table is one plain
  initializer named ``item_embeddings`` [V+1, d] (rows can be appended without torch);
- ``item_tower.onnx``: ``text_vectors`` [B, 384] -> ``item_vectors`` [B, d] for new items;
- ``vocab.json``, ``model_card.json`` and ``model.py`` (the CPU variant's python backend).

The directory is built under a staging directory on the same filesystem and renamed into place,
so Triton (polling) and the workers never see half a version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.model import SequenceRecommender

TOP_K = 100
TABLE_NAME = "item_embeddings"
MODEL_FILE = "model.onnx"
ITEM_TOWER_FILE = "item_tower.onnx"
OPSET = 17


class RankingGraph(nn.Module):
    """The served computation: encode the sequence, score every item, mask, top-K."""

    def __init__(self, model: SequenceRecommender, k: int) -> None:
        super().__init__()
        self.model = model.eval()
        with torch.no_grad():
            table = model.items.table().detach().clone()
        self.item_embeddings = nn.Parameter(table, requires_grad=False)
        self.k = k

    def forward(
        self, item_seq: torch.Tensor, exclude_items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        table = self.item_embeddings
        hidden = self.model.encode(item_seq, table)[:, -1, :]
        scores = hidden @ table.t()
        # padding (index 0) is always masked; exclude_items pads with 0 too
        masked = torch.cat([torch.zeros_like(exclude_items[:, :1]), exclude_items], dim=1)
        scores = scores.scatter(1, masked, torch.full_like(masked, 0, dtype=scores.dtype) - 1e30)
        top_scores, top_items = torch.topk(scores, self.k, dim=1)
        return top_items, top_scores


class ItemTower(nn.Module):
    def __init__(self, model: SequenceRecommender) -> None:
        super().__init__()
        self.items = model.items.eval()

    def forward(self, text_vectors: torch.Tensor) -> torch.Tensor:
        return self.items.new_item_vectors(text_vectors)


def top_k_for(n_items: int, k: int = TOP_K) -> int:
    """K of the graph: at most the number of real items (vocabulary size minus padding)."""
    return max(1, min(k, n_items - 1))


def export_ranking_onnx(model: SequenceRecommender, path: Path, k: int = TOP_K) -> None:
    """Write ``model.onnx`` (opset 17, dynamic batch and exclusion width)."""
    import onnx

    graph = RankingGraph(model, top_k_for(model.config.n_items, k)).eval()
    seq = torch.zeros((2, model.config.max_len), dtype=torch.int64)
    seq[:, -1] = 1
    exclude = torch.zeros((2, 3), dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            graph, (seq, exclude), str(path),
            input_names=["item_seq", "exclude_items"],
            output_names=["top_items", "top_scores"],
            dynamic_axes={"item_seq": {0: "batch"}, "exclude_items": {0: "batch", 1: "excluded"},
                          "top_items": {0: "batch"}, "top_scores": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=False, dynamo=False,
        )
    proto = onnx.load(str(path))
    _name_item_table(proto, graph.item_embeddings.detach().numpy())
    onnx.save(proto, str(path))


def _name_item_table(proto: Any, table: np.ndarray) -> None:
    """Rename the one initializer holding the fused item table to ``item_embeddings``."""
    from onnx import numpy_helper

    matches = [
        init for init in proto.graph.initializer
        if tuple(init.dims) == table.shape
        and np.array_equal(numpy_helper.to_array(init), table)
    ]
    if len(matches) != 1:
        raise RuntimeError(f"expected one item table initializer, found {len(matches)}")
    old = matches[0].name
    if old == TABLE_NAME:
        return
    matches[0].name = TABLE_NAME
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = TABLE_NAME


def export_item_tower(model: SequenceRecommender, path: Path) -> None:
    tower = ItemTower(model).eval()
    sample = torch.zeros((2, model.config.text_dim), dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            tower, (sample,), str(path),
            input_names=["text_vectors"], output_names=["item_vectors"],
            dynamic_axes={"text_vectors": {0: "batch"}, "item_vectors": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )


# --- versions --------------------------------------------------------------------------------
def versions(model_dir: Path) -> list[int]:
    if not model_dir.exists():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def publish_version(
    checkpoint: Path,
    repo_dir: Path,
    model_name: str = "sasrec",
    *,
    metrics: dict[str, Any] | None = None,
    parent_version: int | None = None,
    staging_root: Path | None = None,
    k: int = TOP_K,
) -> int:
    """Export ``checkpoint`` as the next version of ``repo_dir/model_name``; return its number.

    Built in a temporary directory under ``staging_root`` (default ``<artifacts>/staging``; a
    hidden directory inside the model directory when that is another filesystem) and published
    with one ``os.rename``. ``metrics`` default to the checkpoint's own test metrics.
    """
    from training.train import load_checkpoint

    model, vocab, payload = load_checkpoint(checkpoint)
    model_dir = repo_dir / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging_root = _staging_root(model_dir, staging_root)
    build = Path(tempfile.mkdtemp(prefix=f".{model_name}-", dir=staging_root))
    try:
        export_ranking_onnx(model, build / MODEL_FILE, k)
        if model.config.use_text:
            export_item_tower(model, build / ITEM_TOWER_FILE)
        (build / "vocab.json").write_text(json.dumps(vocab.to_json()))
        template = model_dir / "model.py"
        if template.exists():
            shutil.copy(template, build / "model.py")
        card = {
            "model": model_name,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "parent_version": parent_version,
            "checkpoint": str(checkpoint),
            "seed": payload.get("train_config", {}).get("seed"),
            "metrics": metrics if metrics is not None else payload.get("metrics", {}),
            "valid": payload.get("valid", {}),
            "data": payload.get("data", {}),
            "config": {"model": payload["model_config"], "train": payload.get("train_config")},
            "top_k": top_k_for(model.config.n_items, k),
            "n_items": len(vocab.items),
        }
        (build / "model_card.json").write_text(json.dumps(card, indent=2))
        os.chmod(build, 0o755)
        return _rename_into_place(build, model_dir)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


def _staging_root(model_dir: Path, requested: Path | None) -> Path:
    """Where a version is built: ``requested`` (default ``<artifacts>/staging``) if it is on the
    model directory's filesystem (``os.rename`` is atomic only there), else the model directory
    itself under a hidden name (Triton loads numeric version directories only)."""
    if requested is None:
        from streamrec.core.config import Settings

        requested = Settings.from_env().artifacts / "staging"
    try:
        requested.mkdir(parents=True, exist_ok=True)
        if os.stat(requested).st_dev == os.stat(model_dir).st_dev:
            return requested
    except OSError:
        pass
    return model_dir


def _rename_into_place(build: Path, model_dir: Path) -> int:
    """Rename ``build`` to the next free version number (retries if another publisher won)."""
    for _ in range(100):
        version = (versions(model_dir) or [0])[-1] + 1
        try:
            os.rename(build, model_dir / str(version))
            return version
        except OSError:
            if (model_dir / str(version)).exists():
                continue
            raise
    raise RuntimeError(f"could not publish a version under {model_dir}")


def load_version(version_dir: Path, threads: int = 1) -> tuple[Any, list[str], dict[str, Any]]:
    """(onnxruntime session, vocabulary items, model card) of a published version."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(version_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
    )
    items = json.loads((version_dir / "vocab.json").read_text())["items"]
    card = json.loads((version_dir / "model_card.json").read_text())
    return session, items, card
