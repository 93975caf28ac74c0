"""End to end on a small slice: train -> checkpoint -> publish -> load the version -> same top-K.

Uses the real MovieLens-100K reader on a few users when recbole's data is installed, and a
JSONL click log (the event contract) through the CLI. Tiny models, a few epochs, no server:
seconds. Reading clicks back from Kafka is in tests/integration/test_kafka_clicks.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from training.data import LeaveOneOut, pad_left  # noqa: E402
from training.evaluate import evaluate, loo_cases  # noqa: E402
from training.export import load_version, publish_version  # noqa: E402
from training.pipeline import Dataset, load_dataset, train_variant  # noqa: E402
from training.train import load_checkpoint, score_histories  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = {"dim": 16, "layers": 1, "heads": 1, "epochs": 3, "batch_size": 64, "patience": 3}


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "model_repository"
    (repo / "sasrec").mkdir(parents=True)
    shutil.copy(REPO / "model_repository" / "sasrec" / "model.py", repo / "sasrec" / "model.py")
    return repo


def _round_trip(dataset: Dataset, vectors: np.ndarray | None, variant: str,
                tmp_path: Path) -> None:
    split = LeaveOneOut.from_interactions(dataset.interactions, dataset.catalog)
    checkpoint = tmp_path / "artifacts" / f"{variant}.pt"
    metrics = train_variant(dataset, split, vectors, variant, 0, checkpoint,
                            overrides=TINY, progress=False)
    assert 0.0 <= metrics["ndcg@10"] <= 1.0 and "ndcg@10_all" in metrics
    repo = _repository(tmp_path)
    version = publish_version(checkpoint, repo, "sasrec")
    session, served_vocab, card = load_version(repo / "sasrec" / str(version))
    assert served_vocab == split.vocab
    assert card.metrics["ndcg@10"] == pytest.approx(metrics["ndcg@10"])
    assert card.data["interactions"] == len(dataset.interactions)

    model, vocab, _ = load_checkpoint(checkpoint)
    assert card.seq_len == model.config.max_len and card.n_items == len(vocab)
    cases = loo_cases(split, "test")
    # the checkpoint reproduces its recorded metrics
    again = evaluate(lambda h: score_histories(model, h), cases, split.train_counts())
    assert again["ndcg@10"] == pytest.approx(metrics["ndcg@10"])
    # the served graph ranks exactly like the trained model, history masked
    seq = pad_left(cases.histories, card.seq_len)
    width = max(len(e) for e in cases.excluded)
    exclude = np.zeros((len(cases.excluded), width), dtype=np.int64)
    for row, excluded in enumerate(cases.excluded):
        exclude[row, : len(excluded)] = excluded
    top_items, _ = session.run(["top_items", "top_scores"],
                               {"item_seq": seq, "exclude_items": exclude})
    scores = score_histories(model, cases.histories)
    for row in range(len(seq)):
        scores[row, cases.excluded[row]] = -np.inf
    scores[:, 0] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, : top_items.shape[1]]
    # the same items in the same order, except where two items' scores tie within float
    # rounding (ONNX and torch sum in different orders): there the scores must agree
    rows = np.arange(len(seq))[:, None]
    np.testing.assert_allclose(scores[rows, top_items], scores[rows, expected], rtol=1e-5,
                               atol=1e-5)
    assert (top_items == expected).mean() > 0.99


def test_movielens_slice_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("recbole")
    dataset = load_dataset("ml-100k", max_users=60)
    assert dataset.tag == "ml-100k-u60" and len(set(dataset.interactions.users)) == 60
    # random stand-ins for MiniLM vectors keep this test fast; the fusion path is the same
    vectors = np.random.default_rng(0).normal(size=(len(dataset.catalog) + 1, 384))
    vectors = vectors.astype(np.float32)
    vectors[0] = 0.0
    _round_trip(dataset, vectors, "text+id", tmp_path)


def _click_log(path: Path, users: int = 40, items: int = 30) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for u in range(users):
        start = int(rng.integers(0, items))
        for step in range(12):  # users walk the catalogue in order: learnable
            item = (start + step) % items
            lines.append(json.dumps({"event_id": f"{u}-{step}", "user_id": f"user{u}",
                                     "item_id": f"item{item}", "type": "click",
                                     "ts": 1_700_000_000_000 + step * 1000 + u}))
    path.write_text("\n".join(lines) + "\n")


def test_cli_trains_and_publishes_from_a_click_log(tmp_path: Path) -> None:
    log = tmp_path / "clicks.jsonl"
    _click_log(log)
    repo = _repository(tmp_path)
    env = {"STREAMREC_ARTIFACTS": str(tmp_path / "artifacts"),
           "STREAMREC_TRITON__MODEL_REPOSITORY": str(repo), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "train", "--dataset", str(log), "--variant",
         "id", "--small", "--epochs", "15", "--json", "--no-progress"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["version"] == 1 and Path(report["checkpoint"]).exists()
    assert report["metrics"]["hr@10"] > 0.5  # the walk is easy to learn
    session, vocab, card = load_version(repo / "sasrec" / "1")
    assert len(vocab) == 30 and card.parent_version is None and card.kind == "training"
    listing = subprocess.run(
        [sys.executable, "-m", "streamrec.cli", "model", "list"], cwd=REPO, capture_output=True,
        env={**env, "STREAMREC_HOME": str(tmp_path / "home"), "TRITON_URL": ""}, text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert "training" in listing.stdout  # a table row for version 1


def test_direct_dataset_round_trip_without_text(tmp_path: Path) -> None:
    log = tmp_path / "clicks.jsonl"
    _click_log(log, users=20)
    dataset = load_dataset(str(log))
    assert dataset.texts is None and len(dataset.catalog) == 30
    _round_trip(dataset, None, "id", tmp_path)


class _FixedEncoder:
    """Stands in for MiniLM: a fixed vector per text."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def test_the_gate_sees_live_with_the_rows_the_catalogue_refresh_served(tmp_path: Path) -> None:
    from training.catalog import refresh_catalog
    from training.scored_model import ScoredModel
    from training.trainer import with_served_rows

    log = tmp_path / "clicks.jsonl"
    _click_log(log, users=20)
    dataset = load_dataset(str(log))
    split = LeaveOneOut.from_interactions(dataset.interactions, dataset.catalog)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(split.vocab.table_rows, 384)).astype(np.float32)
    vectors[0] = 0.0
    checkpoint = tmp_path / "artifacts" / "text+id.pt"
    train_variant(dataset, split, vectors, "text+id", 0, checkpoint, overrides=TINY,
                  progress=False)
    repo = _repository(tmp_path)
    first = publish_version(checkpoint, repo, "sasrec")
    new_text = {"new-a": rng.normal(size=384), "new-b": rng.normal(size=384)}
    served = refresh_catalog(repo / "sasrec" / str(first), {"new-a": "new-a", "new-b": "new-b"},
                             _FixedEncoder(new_text))
    assert served == first + 1
    model, vocab, _ = load_checkpoint(checkpoint)
    live = with_served_rows(ScoredModel(model, vocab, "sasrec:2"), repo / "sasrec" / str(served))
    assert live.vocab.items[-2:] == ("new-a", "new-b") and live.base_vocab == vocab
    # the served rows are the item tower's: what the torch model gives the same text
    expected = ScoredModel(model, vocab, "x").with_new_items(
        ["new-a", "new-b"], np.stack([new_text["new-a"], new_text["new-b"]]))
    np.testing.assert_allclose(live.table.numpy(), expected.table.numpy(), rtol=1e-4, atol=1e-5)
    scores = live.scores([["item1", "item2"]])
    assert scores.shape == (1, len(vocab) + 3) and np.isfinite(scores[0, -2:]).all()
    # a version without refreshed items is the checkpoint as it was
    assert with_served_rows(ScoredModel(model, vocab, "sasrec:1"),
                            repo / "sasrec" / str(first)).vocab == vocab
