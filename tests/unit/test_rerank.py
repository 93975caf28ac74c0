"""The River re-ranker: prior blend, learning from feedback, drift response, merging."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from streamrec.core.events import CatalogItem, ClickEvent
from streams.engine import Candidate, Catalog, RankingContext
from streams.rerank.exchange import from_snapshot, merge, sync_through_redis, to_snapshot
from streams.rerank.features import FEATURES, ListStats
from streams.rerank.reranker import PRIOR_WEIGHTS, OnlineReranker, RerankConfig
from streams.state import UserState

HOUR = 3600 * 1000


def context(user: str = "u1", event_id: str = "e1", ts: int = 10 * HOUR,
            state: UserState | None = None) -> RankingContext:
    catalog = Catalog([CatalogItem("m", categories=("drama",)),
                       CatalogItem("t", categories=("comedy",))])
    state = state or UserState(user)
    return RankingContext(state=state, event=ClickEvent(event_id, user, "x", "click", ts),
                          catalog=catalog, now_ts=ts, model_answered=True)


def candidates() -> list[Candidate]:
    return [
        Candidate("m", model_score=5.0, model_rank=0),
        Candidate("m2", model_score=4.0, model_rank=1),
        Candidate("c", covisit_score=3.0, covisit_anchor="x"),
        Candidate("t", trending_score=40.0, trending_rank=0),
    ]


def test_prior_reproduces_the_blend_order() -> None:
    ranked = OnlineReranker().rank(candidates(), context(), k=4)
    assert [c.item_id for c, _ in ranked] == ["m", "m2", "c", "t"]


def test_features_are_complete_and_bounded() -> None:
    state = UserState("u1")
    state.update(ClickEvent("e0", "u1", "m0", "click", HOUR), categories=("drama",))
    r = OnlineReranker()
    r.clock.learn_one("t", 9 * HOUR)
    x = r.features_of(candidates()[3], context(state=state))
    assert set(x) == set(FEATURES)
    assert x["trend"] == 1.0 and x["trend_rr"] == 1.0 and x["recency"] == 0.5
    xm = r.features_of(Candidate("m", model_score=1.0, model_rank=0), context(state=state))
    assert xm["affinity"] == 1.0 and xm["model_rr"] == 1.0


def test_rank_scores_every_candidate_as_predict_one_of_its_features() -> None:
    """The whole-list scoring (one feature matrix) equals the one-candidate River verbs."""
    rng = random.Random(7)
    items = [CatalogItem(f"i{i}", categories=tuple(rng.sample(["a", "b", "c", "d"], i % 3)))
             for i in range(60)]
    catalog = Catalog(items)
    state = UserState("u1")
    r = OnlineReranker()
    r.learn_one({name: rng.random() for name in FEATURES}, True)  # weights off the prior
    for n in range(30):
        item = f"i{rng.randrange(60)}"
        state.update(ClickEvent(f"h{n}", "u1", item, "click", n * HOUR),
                     categories=catalog.categories(item))
        r.clock.learn_one(item, n * HOUR)
    for trial in range(20):
        pool = rng.sample(range(70), 40)  # i60..i69 are unknown to the catalogue and clock
        cands = []
        for pos, i in enumerate(pool):
            c = Candidate(f"i{i}")
            if pos % 2 == 0:
                c.model_score, c.model_rank = rng.gauss(0, 2), pos // 2
            if pos % 3 == 0:
                c.covisit_score = float(rng.randrange(0, 9))
                c.covisit_anchor = state.last_item if pos % 6 == 0 else "elsewhere"
            if pos % 5 == 0:
                c.trending_score, c.trending_rank = float(rng.randrange(1, 99)), pos // 5
            cands.append(c)
        ctx = RankingContext(state=state,
                             event=ClickEvent(f"e{trial}", "u1", "i1", "click", 40 * HOUR),
                             catalog=catalog, now_ts=40 * HOUR, model_answered=True)
        ranked = r.rank(cands, ctx, k=10)
        stats = ListStats.of(cands)  # the list's normalisers (model z-score, top trending)
        reference = sorted(((c, r.predict_one(r.features_of(c, ctx, stats))) for c in cands),
                           key=lambda cs: (-cs[1], cs[0].item_id))
        assert [c.item_id for c, _ in ranked] == [c.item_id for c, _ in reference[:10]]
        assert [s for _, s in ranked] == pytest.approx([s for _, s in reference[:10]], abs=1e-9)
        logged = r.log.get("u1", f"e{trial}")
        assert logged is not None and logged.n_shown == 10
        assert logged.items == [c.item_id for c, _ in reference[: r.config.logged_candidates]]
        for c, _ in reference:
            expected = r.features_of(c, ctx, stats)
            got = logged.features(c.item_id)
            assert got is not None
            assert got == pytest.approx(expected, abs=1e-6), c.item_id  # packed as float32


def test_rank_of_no_candidates_is_empty() -> None:
    assert OnlineReranker().rank([], context(), k=10) == []


def test_learns_from_feedback_to_promote_what_is_clicked() -> None:
    r = OnlineReranker(RerankConfig(lr=0.05))
    ctx = context(event_id="e0")
    r.rank(candidates(), ctx, k=2)  # shows m, m2; t is a candidate, not shown
    # one positive, three negatives (the two shown, and the unshown "c")
    assert r.learn_feedback("u1", "e0", "t") == 4
    for i in range(1, 200):
        r.rank(candidates(), context(event_id=f"e{i}"), k=2)
        assert r.learn_feedback("u1", f"e{i}", "t") == 4
    ranked = r.rank(candidates(), context(event_id="last"), k=4)
    assert ranked[0][0].item_id == "t"
    assert r.learn_feedback("u1", "not-that-list", "t") == 0


def test_a_click_outside_the_candidates_teaches_nothing() -> None:
    r = OnlineReranker(RerankConfig(lr=0.05))
    before = dict(r.model._weights)
    for i in range(50):
        r.rank(candidates(), context(event_id=f"e{i}"), k=2)
        assert r.learn_feedback("u1", f"e{i}", "elsewhere") == 0
    assert dict(r.model._weights) == before
    assert [c.item_id for c, _ in r.rank(candidates(), context(event_id="z"), k=4)] == [
        "m", "m2", "c", "t"]


def test_speed_up_learns_faster_then_returns_to_base_rate() -> None:
    x = {"trend": 1.0}
    slow, fast = OnlineReranker(), OnlineReranker().speed_up(factor=10, steps=50)
    for _ in range(50):
        slow.learn_one(x, True)
        fast.learn_one(x, True)
    prior = PRIOR_WEIGHTS["trend"]
    assert fast.weights["trend"] - prior > 5 * (slow.weights["trend"] - prior)
    fast.learn_one(x, True)
    assert fast.model.optimizer.learning_rate == fast.config.lr
    assert fast.reset().weights["trend"] == prior


def test_snapshot_roundtrip_and_merge_averages() -> None:
    a, b = OnlineReranker(), OnlineReranker()
    for _ in range(100):
        a.learn_one({"trend": 1.0}, True)
        b.learn_one({"trend": 1.0}, False)
    a.clock.learn_one("i", 5)
    b.clock.learn_one("i", 3)
    copy = from_snapshot(json.loads(json.dumps(to_snapshot(a))))
    assert copy.weights == a.weights
    expected = (a.weights["trend"] + b.weights["trend"]) / 2
    merge(a, b)
    assert abs(a.weights["trend"] - expected) < 1e-9
    assert a.clock.first_seen["i"] == 3 and a.clock.last_seen["i"] == 5


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[bytes, bytes]] = {}

    async def hset(self, key: str, field: str, value: str) -> None:
        self.hashes.setdefault(key, {})[field.encode()] = value.encode()

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self.hashes.get(key, {}))


def test_two_workers_sync_through_redis() -> None:
    redis = FakeRedis()
    w1, w2 = OnlineReranker(), OnlineReranker()
    for _ in range(100):
        w1.learn_one({"trend": 1.0}, True)
    assert asyncio.run(sync_through_redis(w1, redis, "rerank", "w1")) == 0
    assert asyncio.run(sync_through_redis(w2, redis, "rerank", "w2")) == 1
    prior = PRIOR_WEIGHTS["trend"]
    assert w2.weights["trend"] > prior + 0.9 * (w1.weights["trend"] - prior)


def test_rerank_benchmark_paths_agree() -> None:
    from streams.rerank.bench import format_table, run_benchmark

    report = run_benchmark(lists=30, seed=3)
    assert report["order_mismatches"] == 0
    assert set(report["cases"]) == {"rank", "rank + feedback"}
    assert all(c["median_us"] > 0 for c in report["cases"].values())
    assert format_table(report).endswith("predict_one(features_of(c)): 0")


def test_the_fast_adagrad_step_is_rivers_learn_one_bit_for_bit() -> None:
    from streams.rerank import reranker as module

    rng = random.Random(7)
    fast, river = OnlineReranker(), OnlineReranker()
    names = [*FEATURES, "extra_a", "extra_b"]  # features the model has not seen yet, too
    for step in range(3000):
        x = {name: rng.choice([0.0, 1.0, rng.random(), rng.gauss(0, 3)])
             for name in rng.sample(names, rng.randint(1, len(names)))}
        y, w = rng.random() < 0.1, rng.choice([1.0, 0.5, 2.0])
        if step == 1500:  # a drift response changes the learning rate mid-way
            fast.speed_up(), river.speed_up()
        module._learn_one_adagrad(fast.model, x, y, w)
        river.model.learn_one(x, y, w)
    assert fast.model._weights.to_dict() == river.model._weights.to_dict()
    assert list(fast.model._weights.to_dict()) == list(river.model._weights.to_dict())
    assert fast.model.intercept == river.model.intercept
    assert dict(fast.model.optimizer.g2) == dict(river.model.optimizer.g2)
    assert fast.model.optimizer.n_iterations == river.model.optimizer.n_iterations
    assert module._plain_adagrad(fast.model)
