"""The sequence model: causal, fused item vectors (text, extra modalities), new items, baselines."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.baselines import ImplicitALS, ItemKNN, MostPopular, TextZeroShot  # noqa: E402
from training.model import ModelConfig, SequenceRecommender  # noqa: E402
from training.train import training_windows  # noqa: E402


def _model(**kw: object) -> SequenceRecommender:
    torch.manual_seed(0)
    config = ModelConfig(n_items=21, dim=16, layers=1, heads=2, max_len=8, dropout=0.0,
                         text_dim=12, **kw)
    text = torch.randn(21, 12)
    extra = [torch.randn(21, 5)] if config.extra_dims else None
    return SequenceRecommender(config, text, extra).eval()


def test_scores_are_causal() -> None:
    model = _model()
    seq = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = seq.clone()
    changed[0, -1] = 9
    with torch.no_grad():
        a, b = model(seq), model(changed)
    # positions before the changed one do not see it
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_left_padding_does_not_change_the_scores() -> None:
    model = _model()
    short = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        table = model.items.table()
        full = model.score_last(short, table)
        shifted = model.score_last(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 3]]), table)
    assert full.shape == (1, 21)
    assert torch.isfinite(full).all() and torch.isfinite(shifted).all()


def test_extra_modalities_are_a_configuration() -> None:
    model = _model(extra_dims=[5])
    assert model.items.n_content == 2  # text + image-like vectors, one fusion
    with torch.no_grad():
        table = model.items.table()
        new = model.items.new_item_vectors(torch.randn(3, 12), [torch.randn(3, 5)])
    assert table.shape == (21, 16) and new.shape == (3, 16)


def test_a_new_item_is_its_content_vector_without_id() -> None:
    model = _model()
    drop = torch.zeros(21, dtype=torch.bool)
    drop[4] = True
    with torch.no_grad():
        dropped = model.items.table(drop)[4]
        new = model.items.new_item_vectors(model.items.content(0)[4:5])[0]
    assert torch.allclose(dropped, new, atol=1e-6)


def test_id_only_model_has_no_content() -> None:
    model = _model(use_text=False)
    assert model.items.n_content == 0
    assert model.items.table().shape == (21, 16)


def test_training_windows_cover_every_next_item_once() -> None:
    seq = list(range(1, 13))  # 12 items -> 11 next-item targets
    windows = training_windows([seq], max_len=4)
    inputs, labels = windows[:, :-1], windows[:, 1:]
    predicted = sorted(int(t) for t, i in zip(labels.ravel(), inputs.ravel(), strict=True)
                       if t and i)
    assert predicted == list(range(2, 13))


def test_baselines_score_every_item() -> None:
    seqs = [[1, 2, 3], [2, 3, 4], [1, 3, 4], [5, 6], [5, 6, 7]]
    n = 8
    for model in (MostPopular(n), ItemKNN(n, neighbours=3), ImplicitALS(n, dim=4, iterations=3),
                  TextZeroShot(np.random.default_rng(0).normal(size=(n, 6)))):
        scores = model.fit(seqs).scores([[1, 2], [5]])
        assert scores.shape == (2, n) and np.isfinite(scores).all()
    knn = ItemKNN(n, neighbours=3).fit(seqs)
    assert np.argmax(knn.scores([[5]])[0]) == 6  # 6 always follows 5
    assert np.argmax(MostPopular(n).fit(seqs).scores([[1]])[0]) == 3


def test_training_with_an_extra_modality() -> None:
    from training.data import LeaveOneOut, Vocabulary
    from training.model import ModelConfig
    from training.train import TrainConfig, score_histories, train_model

    rng = np.random.default_rng(0)
    vocab = Vocabulary([f"i{i}" for i in range(1, 31)])
    sequences = [[int(x) for x in rng.integers(1, 31, 12)] for _ in range(20)]
    split = LeaveOneOut(vocab, [f"u{u}" for u in range(20)], sequences)
    text = rng.normal(size=(31, 384)).astype(np.float32)
    image = rng.normal(size=(31, 7)).astype(np.float32)
    config = TrainConfig(model=ModelConfig(dim=8, layers=1, heads=1, max_len=10), epochs=2,
                         batch_size=8)
    result = train_model(split, text, config, progress=False, extra_vectors=[image])
    assert result.model.config.extra_dims == [7] and result.model.items.n_content == 2
    histories, _, _ = split.eval_cases("test")
    assert score_histories(result.model, histories).shape == (20, 31)


def test_warm_start_matches_rows_by_item_id(tmp_path) -> None:
    from training.data import LeaveOneOut, Vocabulary
    from training.model import ModelConfig
    from training.train import TrainConfig, save_checkpoint, train_model, warm_start_state

    rng = np.random.default_rng(0)
    vocab = Vocabulary([f"i{i}" for i in range(1, 21)])
    split = LeaveOneOut(vocab, ["u0", "u1"], [[int(x) for x in rng.integers(1, 21, 10)]] * 2)
    config = TrainConfig(model=ModelConfig(dim=8, layers=1, heads=1, max_len=10), epochs=1,
                         batch_size=4)
    result = train_model(split, rng.normal(size=(21, 384)).astype(np.float32), config,
                         progress=False)
    save_checkpoint(result, tmp_path / "live.pt")
    new_vocab = Vocabulary(["i5", "new", "i1"])  # reordered, one unseen item
    state = warm_start_state(tmp_path / "live.pt", new_vocab)
    old = result.model.items.id_embedding.weight.detach()
    rows = state["items.id_embedding.weight"]
    assert rows.shape == (4, 8)
    assert torch.equal(rows[1], old[5]) and torch.equal(rows[3], old[1])
    assert not any(k.startswith("items.content_") for k in state)
    new_split = LeaveOneOut(new_vocab, ["u0"], [[1, 2, 3, 1, 3]])
    tuned = train_model(new_split, rng.normal(size=(4, 384)).astype(np.float32), config,
                        progress=False, init_state=state)
    assert tuned.model.items.id_embedding.weight.shape == (4, 8)
