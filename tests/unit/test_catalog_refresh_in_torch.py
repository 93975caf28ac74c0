"""A version extended with new items (text-only rows) answers for them and can be fine-tuned."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamrec.core.versions import Vocabulary  # noqa: E402
from training.fine_tune import warm_state  # noqa: E402
from training.model import ModelConfig, SequenceRecommender  # noqa: E402
from training.scored_model import ScoredModel  # noqa: E402


def tiny_model(n_known: int = 6) -> ScoredModel:
    torch.manual_seed(0)
    config = ModelConfig(n_items=n_known + 1, dim=8, layers=1, heads=1, max_len=5,
                         text_dim=4)
    text = torch.randn(n_known + 1, 4)
    model = SequenceRecommender(config, text_vectors=text)
    return ScoredModel(model, Vocabulary([f"i{n}" for n in range(n_known)]), "sasrec:1")


def test_new_items_join_with_text_rows_and_the_same_weights() -> None:
    live = tiny_model()
    text = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    extended = live.with_new_items(["n0", "n1"], text)
    assert extended.vocab.items[-2:] == ("n0", "n1")
    assert extended.table.shape[0] == live.table.shape[0] + 2
    assert torch.equal(extended.table[: live.table.shape[0]], live.table)  # known rows unchanged
    with torch.no_grad():
        expected = live.model.items.new_item_vectors(torch.from_numpy(text))
    assert torch.allclose(extended.table[-2:], expected)
    # the new items can be recommended, and a history that contains one is encoded, not dropped
    recs = extended.recommend([["i0", "n0"]], [[]], k=10)[0]
    assert {item for item, _ in recs} == {*live.vocab.items, "n0", "n1"}
    assert all(np.isfinite(score) for _, score in recs)
    assert len(extended.vocab.encode(["i0", "n0"])) == 2
    # live is untouched: it knows only its own items
    assert {item for item, _ in live.recommend([["i0"]], [[]], k=10)[0]} == set(live.vocab.items)
    assert extended.label == live.label and extended.base_vocab is live.base_vocab


def test_fine_tuning_an_extended_version_matches_rows_by_trained_id() -> None:
    live = tiny_model()
    extended = live.with_new_items(["n0"], np.ones((1, 4), dtype=np.float32))
    vocab = Vocabulary(["n0", "i3", "i0"])
    state = warm_state(extended, vocab)
    ids = state["items.id_embedding.weight"]
    trained = live.model.items.id_embedding.weight
    assert torch.equal(ids[2], trained[live.vocab.index_of["i3"]])
    assert torch.equal(ids[3], trained[live.vocab.index_of["i0"]])
    assert ids.shape[0] == vocab.table_rows


def test_a_new_item_starts_its_fine_tune_from_its_serving_row() -> None:
    """Zero ID row: the candidate's row for a new item is the text-only row serving gives it."""
    live = tiny_model()
    text = np.random.default_rng(1).normal(size=(1, 4)).astype(np.float32)
    extended = live.with_new_items(["n0"], text)
    vocab = Vocabulary(["i0", "n0"])
    state = warm_state(extended, vocab)
    assert torch.count_nonzero(state["items.id_embedding.weight"][2]) == 0
    config = ModelConfig(**{**live.model.config.to_json(), "n_items": vocab.table_rows})
    content = torch.cat([torch.zeros(1, 4), live.model.items.content_0[1:2],
                         torch.from_numpy(text)])
    candidate = SequenceRecommender(config, text_vectors=content)
    candidate.load_state_dict(state, strict=False)
    candidate.eval()
    with torch.no_grad():
        assert torch.allclose(candidate.items.table()[2], extended.table[-1], atol=1e-6)
