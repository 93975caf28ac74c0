"""Evaluation protocol: cold items held out for real, checkpoint hashes, fusion, history mask,
and the eval report's shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamrec.core.config import Settings  # noqa: E402
from training.data import Interactions, LeaveOneOut, pad_left  # noqa: E402
from training.evaluate import cold_split, evaluate_cold  # noqa: E402
from training.model import ModelConfig, SequenceRecommender  # noqa: E402
from training.pipeline import checkpoint_path, run_fingerprint, variant_config  # noqa: E402
from training.train import history_mask, score_histories, window_prefixes  # noqa: E402


def _interactions(users: int = 80, items: int = 200, n: int = 3000) -> Interactions:
    rng = np.random.default_rng(1)
    return Interactions([f"u{u}" for u in rng.integers(0, users, n)],
                        [f"i{i}" for i in rng.integers(0, items, n)], list(range(n)))


def test_cold_items_are_absent_from_the_training_vocabulary() -> None:
    catalog = [f"i{i}" for i in range(200)]
    cold = cold_split(_interactions(), catalog, share=0.15, seed=0)
    trained = set(cold.split.vocab.items)
    held_out = {cold.vocab.items[i - 1] for i in cold.cold_items}
    assert len(held_out) == 30 and not trained & held_out
    assert trained | held_out == set(catalog)
    # the scoring vocabulary is the trained one with the held-out items appended after it
    n_trained = len(cold.split.vocab)
    assert cold.vocab.items[:n_trained] == cold.split.vocab.items
    assert cold.cold_items.tolist() == list(range(n_trained + 1, len(cold.vocab) + 1))
    for seq in cold.split.sequences:
        assert all(1 <= i <= n_trained for i in seq)
    assert len(cold.cases.targets) > 20
    for history, target in zip(cold.cases.histories, cold.cases.targets, strict=True):
        assert target > n_trained and all(i <= n_trained for i in history)
    # another seed holds out other items
    other = cold_split(_interactions(), catalog, share=0.15, seed=1)
    assert set(other.split.vocab.items) != trained


def test_held_out_items_are_scored_as_appended_text_rows() -> None:
    cold = cold_split(_interactions(), [f"i{i}" for i in range(200)], share=0.15, seed=0)
    rows = cold.split.vocab.table_rows
    torch.manual_seed(0)
    text = torch.randn(cold.vocab.table_rows, 12)
    config = ModelConfig(n_items=rows, dim=16, layers=1, heads=2, max_len=8, text_dim=12)
    model = SequenceRecommender(config, text[:rows]).eval()
    scores = score_histories(model, cold.cases.histories, new_item_text=text[rows:].numpy())
    assert scores.shape == (len(cold.cases.histories), cold.vocab.table_rows)
    # the appended columns are what the item tower's rows give, the trained ones unchanged
    with torch.no_grad():
        table = torch.cat([model.items.table(), model.items.new_item_vectors(text[rows:])])
        seq = torch.from_numpy(pad_left(cold.cases.histories[:1], 8))
        expected = model.score_last(seq, table).numpy()[0]
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5, atol=1e-5)
    metrics = evaluate_cold(lambda h: score_histories(model, h, new_item_text=text[rows:].numpy()),
                            cold)
    assert metrics["n_cold_cases"] == len(cold.cases.targets)
    assert 1 <= metrics["n_cold_items"] <= 30
    assert 0.0 <= metrics["cold_hr@10"] <= metrics["cold_hr@10_among_cold"] <= 1.0


def test_checkpoint_names_carry_a_hash_of_config_and_data() -> None:
    split = LeaveOneOut.from_interactions(_interactions())
    text = np.random.default_rng(0).normal(size=(split.vocab.table_rows, 384)).astype(np.float32)
    base = variant_config("text+id", 0, text)
    same = run_fingerprint(variant_config("text+id", 0, text), split, text)
    assert run_fingerprint(base, split, text) == same
    assert run_fingerprint(variant_config("text+id", 0, text, {"epochs": 3}), split, text) != same
    assert run_fingerprint(variant_config("text+id", 0, text, {"dim": 32}), split, text) != same
    assert run_fingerprint(variant_config("text+id", 1, text), split, text) != same
    fewer = LeaveOneOut(split.vocab, split.users, [s[:-1] for s in split.sequences])
    assert run_fingerprint(base, fewer, text) != same
    assert run_fingerprint(base, split, text + 1.0) != same
    path = checkpoint_path(Settings(), "ml-100k", "text+id", 0, same)
    assert path.name == f"text+id-seed0-{same}.pt"


def _model(**kw: object) -> SequenceRecommender:
    torch.manual_seed(0)
    config = ModelConfig(n_items=21, dim=16, layers=1, heads=2, max_len=8, text_dim=12, **kw)
    return SequenceRecommender(config, torch.randn(21, 12)).eval()


def test_fusion_puts_text_only_rows_on_the_scale_of_known_rows() -> None:
    model = _model()
    with torch.no_grad():
        table = model.items.table()
        new = model.items.new_item_vectors(torch.randn(5, 12) * 10)
    assert table.shape == (21, 16) and new.shape == (5, 16)
    assert torch.equal(table[0], torch.zeros(16))  # padding
    known = table[1:, :-1].norm(dim=1)
    # layer-normalised: about the same norm whatever the sources' magnitude (the last of the 16
    # coordinates is the score bias, so the other 15 carry all but one normalised coordinate)
    assert torch.allclose(new[:, :-1].norm(dim=1), known.mean().expand(5), rtol=0.2)
    id_only = _model(use_text=False)
    with torch.no_grad():
        assert id_only.items.table().shape == (21, 16)
        assert id_only.items.new_item_vectors(torch.randn(2, 12)).shape == (2, 16)


def test_history_mask_leaves_out_earlier_items_but_never_the_target() -> None:
    inputs = torch.tensor([[0, 3, 4, 5]])
    labels = torch.tensor([[3, 4, 5, 3]])  # the last target repeats an earlier item
    prefix = torch.zeros(1, 8, dtype=torch.bool)
    prefix[0, 7] = True  # consumed before the window
    seen = history_mask(inputs, labels, prefix, 8)
    assert seen.shape == (1, 4, 8)
    as_sets = [set(torch.nonzero(seen[0, t]).ravel().tolist()) for t in range(4)]
    assert as_sets == [{0, 7}, {0, 3, 7}, {0, 3, 4, 7}, {0, 4, 5, 7}]


def test_window_prefixes_are_the_items_before_each_window() -> None:
    seq = list(range(1, 13))
    prefixes = window_prefixes([seq], max_len=4)
    assert [p.tolist() for p in prefixes] == [list(range(1, 8)), [1, 2, 3], []]


def _click_log(path: Path, users: int = 30, items: int = 24) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for u in range(users):
        start = int(rng.integers(0, items))
        for step in range(10):
            lines.append(json.dumps({"event_id": f"{u}-{step}", "user_id": f"user{u}",
                                     "item_id": f"item{(start + step) % items}", "type": "click",
                                     "ts": 1_700_000_000_000 + step * 1000 + u}))
    path.write_text("\n".join(lines) + "\n")


def test_eval_report_has_means_id_only_cold_rows_and_targets(tmp_path: Path,
                                                              monkeypatch) -> None:
    import training.benchmark as benchmark

    log = tmp_path / "clicks.jsonl"
    _click_log(log)

    def fake_text(dataset, items, settings):  # stand-in MiniLM vectors, fixed per item id
        rows = [np.random.default_rng(int(i.removeprefix("item"))).normal(size=384)
                for i in items]
        return np.vstack([np.zeros((1, 384)), *rows]).astype(np.float32)

    real_load = benchmark.load_dataset

    def fake_load(name, settings, **kw):  # a click log with (stand-in) item text
        dataset = real_load(name, settings, **kw)
        dataset.texts = {item: item for item in dataset.catalog}
        return dataset

    monkeypatch.setattr(benchmark, "text_matrix", fake_text)
    monkeypatch.setattr(benchmark, "load_dataset", fake_load)
    settings = Settings().replace(artifacts=tmp_path / "artifacts")
    tiny = {"dim": 16, "layers": 1, "heads": 1, "epochs": 2, "patience": 2, "batch_size": 32}
    result = benchmark.run_benchmark(str(log), settings, seeds=[0, 1], overrides=tiny,
                                     progress=False, jobs=1, cold_share=0.25)
    assert set(result["model"]["ndcg@10"]) == {"mean", "std"}
    assert set(result["id_only"]["ndcg@10"]) == {"mean", "std"}
    assert result["id_only"]["cold_hr@10"]["mean"] == 0.0 and "cold_note" in result["id_only"]
    assert [row["seed"] for row in result["cold"]] == [0, 1]
    for row in result["cold"]:
        assert 1 <= row["n_cold_items"] <= row["n_cold_cases"]
        assert set(row) >= {"text+id", "text_zero_shot"}
    runs = result["training"]
    assert sorted((r["variant"], r["seed"]) for r in runs) == sorted(
        (v, s) for v in ("text+id", "id", "text+id-cold") for s in (0, 1))
    assert all(r["stop_reason"] in {"epochs", "early_stopping"} and r["epochs_run"] >= 1
               for r in runs)
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    json.dumps(result)
    # a second eval reuses every checkpoint; another --epochs trains new ones
    stamps = {r["checkpoint"]: Path(r["checkpoint"]).stat().st_mtime_ns for r in runs}
    again = benchmark.run_benchmark(str(log), settings, seeds=[0, 1], overrides=tiny,
                                    progress=False, jobs=1, cold_share=0.25)
    assert {r["checkpoint"]: Path(r["checkpoint"]).stat().st_mtime_ns
            for r in again["training"]} == stamps
    other = benchmark.run_benchmark(str(log), settings, seeds=[0], progress=False, jobs=1,
                                    overrides={**tiny, "epochs": 1}, cold_share=0.25)
    assert not {r["checkpoint"] for r in other["training"]} & set(stamps)


def _chains(users: int = 80, items: int = 200, length: int = 30) -> Interactions:
    """Each user clicks i{s}, i{s+1}, i{s+2}, ... (mod ``items``) from a random start."""
    rng = np.random.default_rng(2)
    rows = [(f"u{u}", f"i{(start + k) % items}", u * length + k)
            for u, start in enumerate(rng.integers(0, items, users)) for k in range(length)]
    return Interactions(*(list(column) for column in zip(*rows, strict=True)))


def _chain_scorer(cold: object, new_item_penalty: float) -> object:
    """Knows the chains (the next items after the last one score 2 and 1, the rest 0), but puts
    every held-out item ``new_item_penalty`` below the known ones."""
    vocab = cold.vocab  # type: ignore[attr-defined]
    n_warm = cold.split.vocab.table_rows - 1  # type: ignore[attr-defined]
    number = np.array([-1] + [int(item[1:]) for item in vocab.items])

    def scores(histories: list[list[int]]) -> np.ndarray:
        out = np.zeros((len(histories), vocab.table_rows))
        for row, history in enumerate(histories):
            last = number[history[-1]]
            out[row, number == (last + 1) % 200] = 2.0
            out[row, number == (last + 2) % 200] = 1.0
        out[:, n_warm + 1:] -= new_item_penalty
        return out

    return scores


def test_the_new_item_boost_is_fitted_on_the_other_half_of_the_users() -> None:
    from training.evaluate import calibration_cases

    cold = cold_split(_chains(), [f"i{i}" for i in range(200)], share=0.15, seed=0)
    cases, users = calibration_cases(cold)
    assert len(cases.targets) == len(users) > 100
    n_warm = cold.split.vocab.table_rows - 1
    assert (cases.targets > n_warm).any() and (cases.targets <= n_warm).any()  # both kinds
    for history, target, excluded in zip(cases.histories, cases.targets, cases.excluded,
                                         strict=True):
        assert all(i <= n_warm for i in history) and target not in excluded
    # held-out items pushed far below the known ones: as scored they never reach a top 10;
    # the boost fitted on calibration clicks (warm and held-out alike) lifts them back
    penalised = evaluate_cold(_chain_scorer(cold, 10.0), cold)
    assert penalised["cold_hr@10"] == 0.0
    assert penalised["new_item_boost_sd"] > 0.0
    assert penalised["cold_hr@10_calibrated"] > 0.0
    assert penalised["calibration_hr@10_boosted"] >= penalised["calibration_hr@10_unboosted"]
    # already on the known items' scale: no boost helps the calibration clicks, none is chosen
    fair = evaluate_cold(_chain_scorer(cold, 0.0), cold)
    assert fair["new_item_boost_sd"] == 0.0
    assert fair["cold_hr@10_calibrated"] == fair["cold_hr@10"]


def test_the_score_bias_is_the_last_coordinate_and_new_items_get_the_new_item_bias() -> None:
    model = _model()
    with torch.no_grad():
        model.items.item_bias.weight[5] = 2.0
        model.items.new_item_bias.fill_(-1.0)
        table = model.items.table()
        assert table[5, -1] == 2.0 and table[0].abs().sum() == 0.0
        new = model.items.new_item_vectors(torch.randn(3, 12))
        assert torch.all(new[:, -1] == -1.0)
        hidden = model.encode(torch.tensor([[0, 0, 3, 4]]), table)
        assert torch.all(hidden[..., -1] == 1.0)  # so hidden @ table.T adds each item's bias
        drop = torch.zeros(21, dtype=torch.bool)
        drop[5] = True
        assert model.items.table(drop)[5, -1] == -1.0  # an ID-dropped item scores as new
