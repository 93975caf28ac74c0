"""The pure parts of ``streamrec bench e2e``: what counts as sustained, the --max search, the
table; and the worker's event-loop switch."""

from __future__ import annotations

import asyncio
import math

import pytest

from streamrec.cli.bench_e2e import BenchOptions, Step, format_table, parse_variant, search_max
from streamrec.core.config import UserError
from streams.transport import use_event_loop


def step(rate: float, p99_ms: float, out_eps: float | None = None, unanswered: int = 0) -> Step:
    return Step(
        offered_eps=rate, in_eps=rate, out_eps=rate if out_eps is None else out_eps,
        answered=int(rate), p50_ms=p99_ms / 2, p95_ms=p99_ms, p99_ms=p99_ms, max_ms=p99_ms,
        lag_events=0, unanswered=unanswered, fallback_share=0.0,
        cpu_us_per_event={"worker": 100.0, "broker": 50.0}, peak_rss_mb={"worker": 80.0},
    )


def test_a_rate_is_sustained_only_within_the_p99_target_and_keeping_up() -> None:
    assert step(100, 40).sustained(50)
    assert not step(100, 60).sustained(50)
    assert not step(100, 10, out_eps=80).sustained(50)
    assert not step(100, 10, unanswered=3).sustained(50)


def test_max_search_doubles_then_bisects_below_the_first_failure() -> None:
    capacity = 1000.0  # p99 explodes above it
    tried: list[float] = []

    async def run(rate: float) -> Step:
        tried.append(rate)
        return step(rate, 10 if rate <= capacity else 500)

    best = asyncio.run(search_max(run, BenchOptions(start_rate=200, refine_steps=3)))
    assert tried[:4] == [200, 400, 800, 1600]
    assert best is not None and 800 <= best.offered_eps <= capacity
    assert len(tried) == 4 + 3  # three bisection steps between 800 and 1600


def test_max_search_reports_none_when_even_the_first_rate_fails() -> None:
    async def run(rate: float) -> Step:
        return step(rate, 500)

    assert asyncio.run(search_max(run, BenchOptions(start_rate=200))) is None


def test_the_table_has_a_row_per_variant_and_says_how_it_was_measured() -> None:
    report = {
        "mode": "rate", "rate": 100.0, "duration_s": 3.0, "warmup_s": 1.0,
        "p99_target_ms": 50.0, "machine": {"cpus": 2, "load_avg_1m": 1.0},
        "variants": {"faust-baseline": {**step(100, 20).as_dict()}, "worker": {}},
    }
    table = format_table(report)
    assert "faust-baseline" in table
    assert any(line.split() == ["worker", "no", "sustained", "rate"]
               for line in table.splitlines())
    assert "marginal" in table and not math.isnan(report["variants"]["faust-baseline"]["p99_ms"])


def test_a_variant_may_name_the_user_state_store_and_nothing_else() -> None:
    assert parse_variant("worker:rocksdb") == ("worker", "rocksdb")
    assert parse_variant("faust-baseline:memory") == ("faust-baseline", "memory")
    for bad in ("worker:disk", "workers"):
        with pytest.raises(UserError):
            parse_variant(bad)


def test_the_event_loop_switch_falls_back_to_asyncio() -> None:
    try:
        assert use_event_loop("asyncio") == "asyncio"
        assert use_event_loop("uvloop") in ("uvloop", "asyncio")
    finally:
        asyncio.set_event_loop_policy(None)
