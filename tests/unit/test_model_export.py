"""The exported ONNX graph gives the PyTorch model's top-K exactly; versions publish atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from streamrec.cli import main  # noqa: E402
from streamrec.core import versions  # noqa: E402
from streamrec.core.metrics import mask_scores, top_k_indices  # noqa: E402
from streamrec.core.model_card import read_model_card  # noqa: E402
from streamrec.core.versions import Vocabulary  # noqa: E402
from training.export import (  # noqa: E402
    TABLE_NAME,
    export_item_tower,
    export_ranking_onnx,
    publish_version,
)
from training.model import ModelConfig, SequenceRecommender  # noqa: E402
from training.train import TrainConfig, TrainResult, save_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
N_ITEMS = 301  # with padding


def _model() -> SequenceRecommender:
    torch.manual_seed(0)
    config = ModelConfig(n_items=N_ITEMS, dim=16, layers=2, heads=2, max_len=50, dropout=0.1,
                         text_dim=384)
    return SequenceRecommender(config, torch.randn(N_ITEMS, 384)).eval()


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_top_k_equals_torch(tmp_path: Path) -> None:
    model = _model()
    export_ranking_onnx(model, tmp_path / "model.onnx", k=100)
    rng = np.random.default_rng(0)
    for batch, width in ((1, 1), (5, 7), (33, 60)):  # dynamic batch and exclusion width
        seq = rng.integers(1, N_ITEMS, (batch, 50))
        seq[0, : rng.integers(0, 50)] = 0  # left padding
        exclude = rng.integers(0, N_ITEMS, (batch, width))
        items, scores = _session(tmp_path / "model.onnx").run(
            ["top_items", "top_scores"], {"item_seq": seq, "exclude_items": exclude})
        with torch.no_grad():
            reference = model.score_last(torch.from_numpy(seq)).numpy()
        expected = top_k_indices(mask_scores(reference, [list(e) for e in exclude]), 100)
        assert items.shape == (batch, 100) and items.dtype == np.int64
        assert scores.dtype == np.float32
        # the same ranking: rank by rank the same reference score (two items whose scores differ
        # by float noise between ONNX Runtime and torch may swap; any other difference fails)
        np.testing.assert_allclose(np.take_along_axis(reference, items, 1),
                                   np.take_along_axis(reference, expected, 1), atol=1e-5)
        assert (items == expected).mean() > 0.99
        np.testing.assert_allclose(scores, np.take_along_axis(reference, expected, 1), atol=1e-5)
        assert not (items == 0).any()
        for row, excluded in zip(items, exclude, strict=True):
            assert not set(row.tolist()) & set(excluded.tolist())


def test_item_table_is_one_named_initializer(tmp_path: Path) -> None:
    model = _model()
    export_ranking_onnx(model, tmp_path / "model.onnx", k=10)
    proto = onnx.load(str(tmp_path / "model.onnx"))
    tables = [i for i in proto.graph.initializer if tuple(i.dims) == (N_ITEMS, 16)]
    assert [t.name for t in tables] == [TABLE_NAME]
    assert proto.opset_import[0].version == 17
    # appending a row (a new item) needs no torch: the graph scores it
    table = onnx.numpy_helper.to_array(tables[0])
    with torch.no_grad():
        new_row = model.items.new_item_vectors(torch.randn(1, 384)).numpy() * 50
    tables[0].CopyFrom(onnx.numpy_helper.from_array(
        np.vstack([table, new_row]).astype(np.float32), TABLE_NAME))
    onnx.save(proto, str(tmp_path / "appended.onnx"))
    seq = np.arange(1, 51, dtype=np.int64)[None]
    items, _ = _session(tmp_path / "appended.onnx").run(
        None, {"item_seq": seq, "exclude_items": np.zeros((1, 1), np.int64)})
    assert N_ITEMS in items[0].tolist()


def test_item_tower_matches_the_model(tmp_path: Path) -> None:
    model = _model()
    export_item_tower(model, tmp_path / "item_tower.onnx")
    text = np.random.default_rng(1).normal(size=(4, 384)).astype(np.float32)
    (out,) = _session(tmp_path / "item_tower.onnx").run(["item_vectors"], {"text_vectors": text})
    with torch.no_grad():
        expected = model.items.new_item_vectors(torch.from_numpy(text)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_publish_version_numbers_and_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model()
    vocab = Vocabulary([f"item{i}" for i in range(1, N_ITEMS)])
    result = TrainResult(model, vocab, TrainConfig(seed=3), {"ndcg@10": 0.1}, 1, 2, 1.0, [])
    checkpoint = tmp_path / "ck.pt"
    save_checkpoint(result, checkpoint, {"data": {"first_ts": 1, "last_ts": 2}})
    repo = tmp_path / "model_repository"
    (repo / "sasrec").mkdir(parents=True)
    shutil.copy(REPO / "model_repository" / "sasrec" / "model.py", repo / "sasrec" / "model.py")
    first = publish_version(checkpoint, repo, "sasrec", metrics={"ndcg@10": 0.1})
    second = publish_version(checkpoint, repo, "sasrec", parent_version=first)
    assert (first, second) == (1, 2) and versions.list_versions(repo / "sasrec") == [1, 2]
    version_dir = repo / "sasrec" / "2"
    names = {p.name for p in version_dir.iterdir()}
    assert {"model.onnx", "item_tower.onnx", "vocab.json", "model_card.json", "model.py"} <= names
    card = read_model_card(version_dir)
    assert card.parent_version == 1 and card.seed == 3 and card.kind == "training"
    assert card.data == {"first_ts": 1, "last_ts": 2} and isinstance(card.created_at, float)
    assert (card.n_items, card.seq_len) == (N_ITEMS - 1, model.config.max_len)
    assert card.k == min(100, N_ITEMS - 1)
    assert json.loads((version_dir / "vocab.json").read_text())["items"][0] == "item1"
    assert not [p for p in (repo / "sasrec").iterdir() if p.name.startswith(".")]  # no staging

    # `streamrec model list` prints a table for versions built this way (it once crashed)
    monkeypatch.setenv("STREAMREC_TRITON__MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("STREAMREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRITON_URL", "")
    assert main(["model", "list"]) == 0
    rows = [line[2:].split() for line in capsys.readouterr().out.splitlines()[1:3]]
    assert [row[:2] for row in rows] == [["1", "training"], ["2", "training"]]


def test_repository_configs_follow_the_contract() -> None:
    gpu = (REPO / "model_repository" / "sasrec" / "config.pbtxt").read_text()
    cpu = (REPO / "model_repository" / "sasrec" / "configs" / "cpu.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in gpu and "KIND_GPU" in gpu
    assert "num_versions: 2" in gpu and "dynamic_batching" in gpu
    assert 'backend: "python"' in cpu and "KIND_CPU" in cpu and "dynamic_batching" in cpu
    for name in ("item_seq", "exclude_items", "top_items", "top_scores"):
        assert f'"{name}"' in gpu and f'"{name}"' in cpu
    text_cpu = (REPO / "model_repository" / "text_encoder" / "configs" / "cpu.pbtxt").read_text()
    assert '"text"' in text_cpu and "TYPE_STRING" in text_cpu and "dims: [ 384 ]" in text_cpu
