"""The repository's own templates (configs/cpu.pbtxt, model.py) served by ``streamrec up``'s
Triton: a version built to the contract is loaded and answers like in-process onnxruntime;
a model without a version yet (text_encoder before its export) does not hold the start up."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from inference import testing_model
from inference.model_config import check_model_dir
from inference.triton_server import start_embedded_triton, stop_triton
from streamrec.core import versions
from streamrec.core.config import Settings

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = REPO / "model_repository"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not (TEMPLATES / "sasrec" / "configs" / "cpu.pbtxt").exists(),
                       reason="model_repository/sasrec templates not written yet"),
]


def _copy_templates(repo: Path) -> Path:
    for model in ("sasrec", "text_encoder"):
        source = TEMPLATES / model
        if not source.is_dir():
            continue
        target = repo / model
        target.mkdir(parents=True)
        for name in ("config.pbtxt", "configs", "model.py"):
            if (source / name).is_dir():
                shutil.copytree(source / name, target / name)
            elif (source / name).exists():
                shutil.copy(source / name, target / name)
    return repo / "sasrec"


def test_embedded_triton_serves_the_repository_templates(tmp_path: Path) -> None:
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    repo = tmp_path / "model_repository"
    settings = Settings.from_env(triton={"model_repository": repo}, home=tmp_path / "home")
    assert start_embedded_triton(settings, tmp_path / "logs") is None  # nothing to serve yet
    model_dir = _copy_templates(repo)
    version = testing_model.build_version(model_dir)
    shutil.copy(model_dir / "model.py", model_dir / str(version) / "model.py")  # the template
    assert check_model_dir(model_dir) == []

    server = start_embedded_triton(settings, tmp_path / "logs")
    assert server is not None
    try:
        rng = np.random.default_rng(3)
        item_seq = rng.integers(0, 301, size=(8, 50)).astype(np.int64)
        exclude = rng.integers(0, 301, size=(8, 7)).astype(np.int64)
        session = ort.InferenceSession(str(model_dir / "1" / versions.MODEL_FILE))
        want = session.run(["top_items", "top_scores"],
                           {"item_seq": item_seq, "exclude_items": exclude})
        client = grpcclient.InferenceServerClient(server.grpc_address)
        inputs = [grpcclient.InferInput("item_seq", [8, 50], "INT64"),
                  grpcclient.InferInput("exclude_items", [8, 7], "INT64")]
        inputs[0].set_data_from_numpy(item_seq)
        inputs[1].set_data_from_numpy(exclude)
        result = client.infer("sasrec", inputs, model_version="1")
        np.testing.assert_array_equal(result.as_numpy("top_items"), want[0])
        np.testing.assert_allclose(result.as_numpy("top_scores"), want[1], rtol=1e-6)
        config = client.get_model_config("sasrec", as_json=True)["config"]
        assert config["backend"] == "python"  # the CPU variant was picked
        assert config["version_policy"]["latest"]["num_versions"] == 2
    finally:
        stop_triton(server)
