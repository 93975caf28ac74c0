"""Leave-one-out split: stable time order, nothing from the future leaks into training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.data import Interactions, LeaveOneOut, interactions_from_events, read_jsonl_events
from training.evaluate import cold_split


def _toy() -> Interactions:
    # user u1: a@1, b@2, c@2 (tie: file order b before c), d@3; user u2 has 2 events only
    rows = [("u1", "d", 3), ("u1", "b", 2), ("u2", "x", 5), ("u1", "a", 1), ("u1", "c", 2),
            ("u2", "y", 6), ("u3", "a", 1), ("u3", "b", 1), ("u3", "c", 1), ("u3", "e", 1)]
    return Interactions([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def test_ties_keep_the_source_row_order() -> None:
    seqs = _toy().sequences()
    assert [i for i, _ in seqs["u1"]] == ["a", "b", "c", "d"]
    assert [i for i, _ in seqs["u3"]] == ["a", "b", "c", "e"]  # all tied: file order


def test_leave_one_out_targets_and_training_data() -> None:
    split = LeaveOneOut.from_interactions(_toy())
    v = split.vocab.index_of
    train = dict(zip(split.users, split.train_sequences(), strict=True))
    assert train["u1"] == [v["a"], v["b"]]
    assert train["u2"] == [v["x"], v["y"]]  # too short to evaluate: training only
    histories, targets, excluded = split.eval_cases("valid")
    assert targets.tolist() == [v["c"], v["c"]]  # u1 and u3
    assert histories[0] == [v["a"], v["b"]]
    histories, targets, excluded = split.eval_cases("test")
    assert targets.tolist() == [v["d"], v["e"]]
    assert histories[0] == [v["a"], v["b"], v["c"]]
    assert excluded[0] == sorted([v["a"], v["b"], v["c"]])


def test_no_future_item_in_training_or_history() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    data = Interactions([f"u{u}" for u in rng.integers(0, 50, n)],
                        [f"i{i}" for i in rng.integers(0, 300, n)],
                        rng.integers(0, 100, n).tolist())
    split = LeaveOneOut.from_interactions(data)
    _, valid_targets, _ = split.eval_cases("valid")
    test_histories, test_targets, test_excluded = split.eval_cases("test")
    full = {tuple(s) for s in split.sequences}
    for seq, train in zip(split.sequences, split.train_sequences(), strict=True):
        if len(seq) >= 3:
            assert train == seq[:-2]  # neither validation nor test target in training
    for history, target, excluded in zip(test_histories, test_targets, test_excluded,
                                         strict=True):
        assert tuple([*history, target]) in full  # the history is exactly the past
        assert set(excluded) == set(history)


def test_cold_split_removes_held_out_items_from_training() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    data = Interactions([f"u{u}" for u in rng.integers(0, 80, n)],
                        [f"i{i}" for i in rng.integers(0, 200, n)],
                        list(range(n)))
    cold = cold_split(data, [f"i{i}" for i in range(200)], share=0.15, seed=0)
    held = set(cold.cold_items.tolist())
    assert len(held) == 30
    for seq in cold.split.sequences:
        assert not held & set(seq)
    assert len(cold.cases.targets) > 20
    for history, target in zip(cold.cases.histories, cold.cases.targets, strict=True):
        assert target in held and not held & set(history)


def test_jsonl_click_log(tmp_path: Path) -> None:
    events = [
        {"event_id": "e1", "user_id": "u1", "item_id": "a", "type": "click", "ts": 2000},
        {"event_id": "e2", "user_id": "u1", "item_id": "b", "type": "click", "ts": 1000},
        {"event_id": "e1", "user_id": "u1", "item_id": "a", "type": "click", "ts": 2000},
    ]
    path = tmp_path / "clicks.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    data = interactions_from_events(read_jsonl_events(path))
    assert list(data) == [("u1", "b", 1000), ("u1", "a", 2000)]  # repeat counted once
