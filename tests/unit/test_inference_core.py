"""Serving parts without a server: codec, circuit breaker, versions, pin, catalogue, configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference import codec, testing_model
from inference.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from inference.model_config import check_model_dir, parse_config
from streamrec.core import versions
from streamrec.core.model_card import read_model_card
from training import catalog

REPO = Path(__file__).resolve().parents[2]


def test_codec_left_pads_drops_unknown_and_buckets_exclusions() -> None:
    vocab = versions.Vocabulary(["a", "b", "c"])
    seq = codec.encode_sequences(vocab, [["a", "zzz", "c"], []], seq_len=5)
    assert seq.tolist() == [[0, 0, 0, 1, 3], [0, 0, 0, 0, 0]]
    excl = codec.encode_exclusions(vocab, [["b"], ["a", "c", "nope"]], min_width=4)
    assert excl.tolist() == [[2, 0, 0, 0], [1, 3, 0, 0]]
    assert codec.bucket_width(17) == 32 and codec.bucket_width(0) == 16
    lists = codec.decode(vocab, np.array([[3, 0, 1, 2]]),
                         np.array([[2.0, 1.5, 1.0, -np.inf]], dtype=np.float32), k=5)
    assert lists == [[("c", 2.0), ("a", 1.0)]]


def test_circuit_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, open_s=1.0, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    now[0] = 1.5
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == OPEN
    now[0] = 3.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.opens == 1


def test_publish_is_atomic_and_numbers_versions(tmp_path: Path) -> None:
    model_dir = tmp_path / "sasrec"
    assert testing_model.build_version(model_dir, n_items=120) == 1
    assert testing_model.build_version(model_dir, n_items=120) == 2
    assert versions.list_versions(model_dir) == [1, 2]
    assert not [p for p in model_dir.iterdir() if p.name.startswith(versions.STAGING_PREFIX)]
    with pytest.raises(FileExistsError):
        testing_model.build_version(model_dir, n_items=120, version=2)
    versions.write_pin(tmp_path, "sasrec", 1, reason="test")
    assert versions.read_pin(tmp_path, "sasrec") == 1
    versions.write_pin(tmp_path, "sasrec", None)
    assert versions.read_pin(tmp_path, "sasrec") is None


def test_catalog_refresh_appends_rows_and_follows_the_pin(tmp_path: Path) -> None:
    import onnxruntime as ort

    model_dir = tmp_path / "sasrec"
    testing_model.build_version(model_dir, n_items=120)
    testing_model.build_version(model_dir, n_items=120, seed=3)
    versions.write_pin(tmp_path, "sasrec", 1)
    encoder = testing_model.HashingTextEncoder()
    version = catalog.refresh_latest(model_dir, {"n1": "red fox", "i5": "known"}, encoder)
    assert version == 3 and versions.read_pin(tmp_path, "sasrec") == 3
    card = read_model_card(model_dir / "3")
    assert card.parent_version == 1 and card.kind == "catalog refresh"
    assert card.details["added"] == 1 and card.n_items == 121
    vocab = versions.Vocabulary.load(model_dir / "3")
    assert len(vocab) == 121 and vocab.index_of["n1"] == 121
    # the old items score exactly as in the parent version
    item_seq = codec.encode_sequences(vocab, [["i1", "i9"]], card.seq_len)
    old = ort.InferenceSession(str(model_dir / "1" / "model.onnx")).run(
        None, {"item_seq": item_seq, "exclude_items": np.array([[0]], dtype=np.int64)})
    new = ort.InferenceSession(str(model_dir / "3" / "model.onnx")).run(
        None, {"item_seq": item_seq, "exclude_items": np.array([[121]], dtype=np.int64)})
    np.testing.assert_array_equal(old[0], new[0])
    # nothing new: no version
    assert catalog.refresh_latest(model_dir, {"n1": "red fox"}, encoder) is None


def test_generated_configs_parse_with_tritons_schema(tmp_path: Path) -> None:
    model_dir = testing_model.write_model_repository(tmp_path / "repo")
    assert check_model_dir(model_dir) == []
    gpu = parse_config(model_dir / "config.pbtxt")
    assert gpu.platform == "onnxruntime_onnx" and gpu.max_batch_size == 64
    assert gpu.version_policy.latest.num_versions == 2
    assert gpu.instance_group[0].kind == gpu.instance_group[0].KIND_GPU
    cpu = parse_config(model_dir / "configs" / "cpu.pbtxt")
    assert cpu.backend == "python" and cpu.input[1].allow_ragged_batch


def test_bad_config_is_reported(tmp_path: Path) -> None:
    model_dir = testing_model.write_model_repository(tmp_path / "repo")
    text = (model_dir / "config.pbtxt").read_text()
    (model_dir / "config.pbtxt").write_text(text.replace("max_batch_size", "max_batch"))
    (model_dir / "1" / "model.py").unlink()
    problems = check_model_dir(model_dir)
    assert any("does not parse" in p for p in problems)
    assert any("no model.py" in p for p in problems)


@pytest.mark.skipif(not (REPO / "model_repository" / "sasrec" / "config.pbtxt").exists(),
                    reason="no model_repository/sasrec/config.pbtxt yet")
def test_repository_gpu_config_parses_and_names_existing_files() -> None:
    model_dir = REPO / "model_repository" / "sasrec"
    config = parse_config(model_dir / "config.pbtxt")
    assert config.name in ("", "sasrec")
    if versions.list_versions(model_dir):
        assert check_model_dir(model_dir) == []
    else:
        assert json.dumps(str(config))  # parses; nothing published to check files against
