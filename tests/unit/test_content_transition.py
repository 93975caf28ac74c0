"""The content-transition probe: pairs split at the drift, hit rates, a transition that
generalises through text to items it never trained on."""

from __future__ import annotations

import numpy as np

from streamrec.core.events import ClickEvent
from training.replay.content_transition import (
    ContentTransition,
    TransitionPairs,
    cosine_scores,
    hit_rate,
    probe,
)


def clicks(pairs: list[tuple[str, str]]) -> list[ClickEvent]:
    return [ClickEvent(f"e{n}", user, item, "click", n) for n, (user, item) in enumerate(pairs)]


def test_pairs_split_at_the_drift_and_keep_only_new_to_new_after_it() -> None:
    row_of = {"a": 0, "b": 1, "c": 2, "d": 3}
    events = clicks([("u", "a"), ("u", "b"), ("u", "b"), ("v", "a"),  # before the drift
                     ("u", "c"), ("u", "d"), ("v", "c")])  # after: b->c (old->new), c->d, a->c
    pairs = TransitionPairs.from_events(events, 4, row_of)
    assert pairs.before.tolist() == [[0, 1]]  # the repeat b->b is not a transition
    assert pairs.new_items.tolist() == [False, False, True, True]
    assert pairs.after_new.tolist() == [[2, 3]]


def test_hit_rate_excludes_the_previous_item_and_counts_ties_against_the_target() -> None:
    scores = np.array([[9.0, 1.0, 1.0], [0.0, 5.0, 1.0]])
    pairs = np.array([[0, 1], [1, 2]])
    every = np.ones(3, dtype=bool)
    assert hit_rate(lambda prev: scores[prev], pairs, every) == 1.0  # K=10 > 3 items
    many = np.zeros((2, 30))
    many[0, 5] = 1.0  # item 0's next: 5 scores on top; item 1's next (2) ties with 28 others
    pairs = np.array([[0, 5], [1, 2]])
    assert hit_rate(lambda prev: many[prev], pairs, np.ones(30, dtype=bool)) == 0.5


def test_a_learned_transition_follows_an_order_that_only_the_text_carries() -> None:
    # text = [cluster one-hot | position one-hot]; the order is position p -> p+1 in every
    # cluster; the transition learns it on cluster 0 and follows it in cluster 1, unseen
    positions = 24
    vectors = np.zeros((2 * positions, 2 + positions), dtype=np.float32)
    for cluster in range(2):
        for p in range(positions):
            vectors[cluster * positions + p, cluster] = 1.0
            vectors[cluster * positions + p, 2 + p] = 1.0
    old = np.array([[p, p + 1] for p in range(positions - 1)] * 20)
    new = np.array([[positions + p, positions + p + 1] for p in range(positions - 1)])
    candidates = np.arange(2 * positions) >= positions
    model = ContentTransition(vectors, rank=16, seed=0)
    model.learn_many(old, epochs=60, lr=1e-2)
    assert hit_rate(model.predict_many, new, candidates) > 0.9
    assert hit_rate(cosine_scores(vectors), new, candidates) < 0.1  # similarity ties


def test_probe_reports_every_rate_for_a_small_stream() -> None:
    rng = np.random.default_rng(0)
    items = [f"i{n}" for n in range(12)]
    before = [(f"u{n % 3}", f"i{n % 6}") for n in range(60)]
    after = [(f"u{n % 3}", f"i{6 + n % 6}") for n in range(30)]
    result = probe(clicks(before + after), len(before), items,
                   rng.normal(size=(12, 8)).astype(np.float32), epochs=2)
    assert result["new_items"] == 6 and result["pairs_after_new"] > 0
    for key in ("cosine_hr@10_among_new", "transition_hr@10_among_new",
                "transition_hr@10_among_all", "transition_seen_hr@10"):
        assert 0.0 <= result[key] <= 1.0
