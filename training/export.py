"""Export a trained checkpoint as a Triton model version, published atomically.

One version directory ``<repo>/<model>/<N>/`` holds (docs/CONTRACTS.md):

- ``model.onnx``: ``item_seq`` [B, L] + ``exclude_items`` [B, E] -> ``top_items`` [B, K],
  ``top_scores`` [B, K]; scoring and top-K inside the graph; the fused item table is one plain
  initializer named ``item_embeddings`` [V+1, d] (rows can be appended without torch);
- ``item_tower.onnx``: ``text_vectors`` [B, 384] -> ``item_vectors`` [B, d] for new items;
- ``vocab.json``, ``model_card.json`` (:class:`~streamrec.core.model_card.ModelCard`: L is its
  ``seq_len``, K its ``k``) and ``model.py`` (the CPU variant's python backend).

The directory is built in a staging directory inside the model directory and published with
:func:`streamrec.core.versions.publish` (one rename), so Triton (polling) and the workers never
see half a version.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streamrec.core import versions
from streamrec.core.model_card import ModelCard, read_model_card, write_model_card
from training.model import SequenceRecommender

TOP_K = 100
TABLE_NAME = "item_embeddings"
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
def publish_version(
    checkpoint: Path,
    repo_dir: Path,
    model_name: str = "sasrec",
    *,
    metrics: dict[str, Any] | None = None,
    parent_version: int | None = None,
    k: int = TOP_K,
    kind: str = "training",
    reason: str = "",
) -> int:
    """Export ``checkpoint`` as the next version of ``repo_dir/model_name``; return its number.

    Built in a staging directory inside the model directory and published with one rename.
    ``metrics`` default to the checkpoint's own test metrics; ``kind`` and ``reason`` go to the
    model card (the trainer publishes ``retrain`` versions with its gate's reason).
    """
    from training.train import load_checkpoint

    model, vocab, payload = load_checkpoint(checkpoint)
    model_dir = repo_dir / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    staged = versions.staging_dir(model_dir)
    try:
        export_ranking_onnx(model, staged / versions.MODEL_FILE, k)
        if model.config.use_text:
            export_item_tower(model, staged / versions.ITEM_TOWER_FILE)
        vocab.save(staged)
        template = model_dir / "model.py"
        if template.exists():
            shutil.copy(template, staged / "model.py")
        write_model_card(staged, ModelCard(
            n_items=len(vocab),
            seq_len=model.config.max_len,
            k=top_k_for(model.config.n_items, k),
            kind=kind,
            reason=reason,
            parent_version=parent_version,
            metrics=metrics if metrics is not None else payload.get("metrics", {}),
            model_name=model_name,
            checkpoint=str(checkpoint),
            seed=payload.get("train_config", {}).get("seed"),
            config={"model": payload["model_config"], "train": payload.get("train_config")},
            data=payload.get("data", {}),
            valid=payload.get("valid", {}),
        ))
        return versions.publish(model_dir, staged)
    except BaseException:
        versions.discard_staging(staged)
        raise


def load_version(version_dir: Path, threads: int = 1) -> tuple[Any, versions.Vocabulary, ModelCard]:
    """(onnxruntime session, vocabulary, model card) of a published version."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        str(version_dir / versions.MODEL_FILE), options, providers=["CPUExecutionProvider"]
    )
    return session, versions.Vocabulary.load(version_dir), read_model_card(version_dir)
