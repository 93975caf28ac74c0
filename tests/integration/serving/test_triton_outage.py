"""Triton killed mid-stream: answers fall back at once, the model answers again after restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.client import ClientConfig, ModelClient
from inference.triton_server import TritonProcess
from streamrec.core.config import Settings
from streamrec.core.ports import ModelUnavailable
from tests.support import wait_until_async

pytestmark = pytest.mark.timeout(120)

FALLBACK_BUDGET_S = 0.100


def test_fallback_within_100ms_then_model_again_after_restart(
    triton: TritonProcess, serving_repo: Path, start_triton: Callable[..., TritonProcess]
) -> None:
    timeout_s = Settings.from_env().triton.timeout_s  # the worker's setting (80 ms)
    log: list[tuple[float, str, float]] = []  # (start, "model"|"fallback", seconds)
    events: dict[str, float] = {}

    async def caller(client: ModelClient, n: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await client.recommend([[f"i{n}", f"i{n + 1}"]], [[]], 10)
                outcome = "model"
            except ModelUnavailable:
                outcome = "fallback"
            log.append((started, outcome, time.monotonic() - started))
            await asyncio.sleep(0.01)

    def outcomes(outcome: str, after: str) -> int:
        """How many calls that started after ``events[after]`` ended as ``outcome``."""
        return sum(o == outcome for s, o, _ in log if after in events and s > events[after])

    async def run() -> dict[str, object]:
        config = ClientConfig(url=triton.grpc_address, model_repository=serving_repo,
                              timeout_s=timeout_s, open_s=0.5)
        async with ModelClient(config) as client:
            stop = asyncio.Event()
            callers = [asyncio.create_task(caller(client, n, stop)) for n in range(1, 5)]
            events["started"] = time.monotonic()
            await wait_until_async(lambda: outcomes("model", after="started") > 10, 20,
                                   "more than 10 model answers before the kill")
            events["killed"] = time.monotonic()
            os.killpg(triton.pid, signal.SIGKILL)  # the server and its python-backend stubs
            # the outage lasts until the circuit has opened and rejected calls
            await wait_until_async(
                lambda: client.stats.circuit_rejections > 0
                and outcomes("fallback", after="killed") >= 20, 20,
                "the circuit opening (calls rejected) and 20 fallbacks during the outage")
            events["restarting"] = time.monotonic()
            await asyncio.to_thread(
                start_triton, serving_repo, http_port=triton.http_port,
                grpc_port=triton.grpc_port, metrics_port=triton.metrics_port,
            )
            events["ready"] = time.monotonic()
            await wait_until_async(lambda: outcomes("model", after="ready") >= 20, 20,
                                   "20 model answers after the restart")
            stop.set()
            await asyncio.gather(*callers)
            return {"stats": client.stats.as_dict(), "circuit": client.circuit_state}

    result = asyncio.run(run())
    before = [o for s, o, _ in log if s < events["killed"]]
    during = [(o, d) for s, o, d in log if events["killed"] + 0.05 < s < events["restarting"]]
    after = [o for s, o, _ in log if s > events["ready"]]
    assert before.count("model") > 10
    assert during and all(o == "fallback" for o, _ in during)
    slowest = max(d for _, d in during)
    assert slowest < FALLBACK_BUDGET_S, f"a fallback took {slowest * 1000:.0f} ms"
    assert after.count("model") >= 20, "the model did not answer again after the restart"
    stats = result["stats"]
    assert isinstance(stats, dict)
    assert stats["circuit_rejections"] > 0 and stats["fallbacks"] >= len(during)
    assert result["circuit"] == "closed"
