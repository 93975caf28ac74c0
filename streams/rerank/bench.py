"""``streamrec bench rerank``: the re-ranker's cost per recommendation list.

Builds candidate lists shaped like the worker's (50 from the model, 20 co-visited, 20 trending,
overlapping), then times, per list:

- ``rank``: :meth:`OnlineReranker.rank`, which scores the whole list at once (one feature
  matrix, one dot product) and logs the candidates for feedback;
- ``rank + feedback``: ``rank``, then :meth:`OnlineReranker.learn_feedback` for a click on one
  of the candidates (``learn_one`` for each logged candidate that ranked in the top 50).

Untimed, it checks on every list that ``rank`` orders the candidates as River's one-example
verbs do (:meth:`OnlineReranker.predict_one` of :meth:`OnlineReranker.features_of`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from streamrec.core.events import CatalogItem, ClickEvent
from streamrec.core.metrics import percentile
from streams.engine import Candidate, Catalog, RankingContext
from streams.rerank.features import ListStats
from streams.rerank.reranker import OnlineReranker
from streams.state import UserState

HOUR = 3600 * 1000
N_ITEMS = 2000
N_GENRES = 18


def _world(seed: int) -> tuple[random.Random, Catalog, UserState, OnlineReranker]:
    rng = random.Random(seed)
    catalog = Catalog([
        CatalogItem(f"i{i}", categories=(f"g{i % N_GENRES}", f"g{(i * 7) % N_GENRES}"))
        for i in range(N_ITEMS)
    ])
    state = UserState("u1")
    reranker = OnlineReranker()
    for n in range(60):
        item = f"i{rng.randrange(N_ITEMS)}"
        state.update(ClickEvent(f"h{n}", "u1", item, "view", n * 60_000),
                     categories=catalog.categories(item))
        reranker.clock.learn_one(item, n * 60_000)
    return rng, catalog, state, reranker


def _candidate_list(rng: random.Random, anchor: str | None) -> list[Candidate]:
    out: dict[str, Candidate] = {}
    for rank, i in enumerate(rng.sample(range(N_ITEMS), 50)):
        out[f"i{i}"] = Candidate(f"i{i}", model_score=10.0 - 0.1 * rank, model_rank=rank)
    for i in rng.sample(range(N_ITEMS), 20):
        c = out.setdefault(f"i{i}", Candidate(f"i{i}"))
        c.covisit_score, c.covisit_anchor = float(rng.randrange(1, 30)), anchor
    for rank, i in enumerate(rng.sample(range(N_ITEMS), 20)):
        c = out.setdefault(f"i{i}", Candidate(f"i{i}"))
        c.trending_score, c.trending_rank = float(100 - rank), rank
    return list(out.values())


def _per_candidate(r: OnlineReranker, cands: list[Candidate], ctx: RankingContext,
                   k: int) -> list[str]:
    r.clock.learn_one(ctx.event.item_id, ctx.event.ts)
    stats = ListStats.of(cands)
    scored = [(c, r.predict_one(r.features_of(c, ctx, stats))) for c in cands]
    scored.sort(key=lambda cs: (-cs[1], cs[0].item_id))
    return [c.item_id for c, _ in scored[:k]]


def run_benchmark(lists: int = 500, seed: int = 0, k: int = 10,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    rng, catalog, state, reranker = _world(seed)
    batch = [_candidate_list(rng, state.last_item) for _ in range(lists)]
    now = 61 * 60_000

    def ctx(n: int) -> RankingContext:
        return RankingContext(state=state, event=ClickEvent(f"e{n}", "u1", "i1", "view", now),
                              catalog=catalog, now_ts=now, model_answered=True)

    contexts = [ctx(n) for n in range(lists)]
    timings: dict[str, list[float]] = {"rank": [], "rank + feedback": []}
    learned = 0
    for n, (cands, c) in enumerate(zip(batch, contexts, strict=True)):
        t1 = time.perf_counter()
        reranker.rank(cands, c, k)
        t2 = time.perf_counter()
        clicked = cands[rng.randrange(len(cands))].item_id
        learned += reranker.learn_feedback("u1", c.event.event_id, clicked)
        t3 = time.perf_counter()
        timings["rank"].append((t2 - t1) * 1e6)
        timings["rank + feedback"].append((t3 - t1) * 1e6)
        if progress is not None and (n + 1) % 100 == 0:
            progress(f"{n + 1}/{lists} lists timed")
    # untimed: the same lists on an identical re-ranker, against River's one-example verbs
    _, _, _, fresh = _world(seed)
    mismatches = sum(
        _per_candidate(fresh, cands, c, k) != [cand.item_id for cand, _ in fresh.rank(cands, c, k)]
        for cands, c in zip(batch, contexts, strict=True)
    )
    cases = {name: {"median_us": round(percentile(v, 50), 1),
                    "p99_us": round(percentile(v, 99), 1)}
             for name, v in timings.items()}
    return {
        "lists": lists,
        "candidates_per_list": round(sum(map(len, batch)) / lists, 1),
        "examples_per_feedback": round(learned / lists, 1),
        "order_mismatches": mismatches,
        "cases": cases,
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['lists']} lists of ~{report['candidates_per_list']:.0f} candidates, "
        f"~{report['examples_per_feedback']:.0f} examples per feedback click",
        f"{'case':<18}{'median us':>12}{'p99 us':>10}{'lists/s':>10}",
    ]
    for name, c in report["cases"].items():
        lines.append(f"{name:<18}{c['median_us']:>12,.1f}{c['p99_us']:>10,.1f}"
                     f"{1e6 / c['median_us']:>10,.0f}")
    lines.append(f"lists that rank orders differently from predict_one(features_of(c)): "
                 f"{report['order_mismatches']}")
    return "\n".join(lines)
