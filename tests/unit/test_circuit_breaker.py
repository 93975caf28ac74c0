"""The circuit breaker's half-open paths: every probe ends with a verdict, nothing sticks open.

Pure: a fake clock for the breaker, a fake Triton for the batcher (no server, no network).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.batching import TritonBatcher
from inference.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from inference.client import ClientConfig, ClientStats
from inference.live_version import LiveVersion
from streamrec.core import versions
from streamrec.core.ports import ModelUnavailable
from tests.support import wait_until_async


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def opened_breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=2, open_s=1.0, clock=clock, **kwargs)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == OPEN and breaker.opens == 1
    return breaker


def test_failed_probe_opens_again_and_a_later_probe_closes() -> None:
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now = 1.0
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    clock.now = 1.2
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 2.1  # 0.9 s after the failed probe: still open
    assert breaker.state == OPEN
    clock.now = 2.2
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow() and breaker.opens == 1


def test_a_probe_that_never_reports_counts_as_failed() -> None:
    clock = FakeClock()
    breaker = opened_breaker(clock, probe_timeout_s=5.0)
    clock.now = 1.0
    assert breaker.allow()  # the probe goes out and its verdict is lost
    clock.now = 5.9
    assert breaker.state == HALF_OPEN and not breaker.allow()  # still waiting for it
    clock.now = 6.0  # its deadline: failed, open again from then
    assert breaker.state == OPEN and breaker.lost_probes == 1 and not breaker.probing
    clock.now = 7.0
    assert breaker.state == HALF_OPEN and breaker.allow()  # a new probe
    breaker.record_success()
    assert breaker.state == CLOSED


def test_a_late_verdict_of_a_lost_probe_still_counts() -> None:
    clock = FakeClock()
    breaker = opened_breaker(clock, probe_timeout_s=2.0)
    clock.now = 1.0
    assert breaker.allow()
    clock.now = 3.5
    assert breaker.state == OPEN
    breaker.record_success()  # the server answered after all
    assert breaker.state == CLOSED


# --- the batcher records a verdict for a probe on every path --------------------------------


class FakeTriton:
    """Answers ``infer`` with what ``behaviour`` says: a result, an exception, or a hang."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0

    async def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> Any:
        self.calls += 1
        if self.behaviour == "bug":
            raise RuntimeError("not a Triton error")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "triton-error":
            from tritonclient.utils import InferenceServerException

            raise InferenceServerException("connection refused", status="StatusCode.UNAVAILABLE")
        batch = int(inputs[0].shape()[0])
        return FakeResult(batch)


class FakeResult:
    def __init__(self, batch: int) -> None:
        self.batch = batch

    def as_numpy(self, name: str) -> np.ndarray:
        if name == "top_items":
            return np.ones((self.batch, 1), dtype=np.int64)
        return np.ones((self.batch, 1), dtype=np.float32)


LIVE = LiveVersion("sasrec", 1, versions.Vocabulary(["a", "b"]), seq_len=4)


async def one_probe(behaviour: str, live: LiveVersion | None, cancel: bool = False) -> Any:
    """Open a breaker, let one half-open probe through a batcher, return the breaker."""
    clock = FakeClock()
    breaker = opened_breaker(clock)
    clock.now = 1.0
    assert breaker.allow()  # the probe
    config = ClientConfig(url="unused", model_repository=Path("unused"), max_batch=1,
                          timeout_s=0.05, retries=0)
    batcher = TritonBatcher(config, FakeTriton(behaviour), breaker, ClientStats(),
                            live=lambda: live, on_version_refused=lambda: None)
    runner = asyncio.create_task(batcher.run())
    future = batcher.submit([["a"]], [[]], 1)
    try:
        if cancel:
            await wait_until_async(lambda: batcher._inflight, 5,
                                   "the batch out, waiting for Triton")
            for task in list(batcher._inflight):
                task.cancel()
        failing = behaviour != "ok" or live is None
        with pytest.raises(ModelUnavailable) if failing else contextlib.nullcontext():
            await asyncio.wait_for(future, 5)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await batcher.drain()
    return breaker


@pytest.mark.parametrize(
    ("behaviour", "live", "cancel"),
    [
        pytest.param("triton-error", LIVE, False, id="triton-error"),
        pytest.param("bug", LIVE, False, id="unexpected-exception"),
        pytest.param("ok", None, False, id="no-live-version"),
        pytest.param("hang", LIVE, True, id="cancelled"),
    ],
)
def test_a_failed_probe_reopens_the_circuit_on_every_path(
    behaviour: str, live: LiveVersion | None, cancel: bool
) -> None:
    breaker = asyncio.run(one_probe(behaviour, live, cancel))
    assert not breaker.probing, "the probe never recorded its result"
    assert breaker.state == OPEN  # open again, so a later probe can close it


def test_a_successful_probe_closes_the_circuit() -> None:
    breaker = asyncio.run(one_probe("ok", LIVE))
    assert breaker.state == CLOSED and not breaker.probing


def test_calls_queued_when_the_batcher_stops_get_the_fallback() -> None:
    async def run() -> None:
        config = ClientConfig(url="unused", model_repository=Path("unused"), max_batch=1,
                              max_in_flight=1)
        batcher = TritonBatcher(config, FakeTriton("ok"), CircuitBreaker(), ClientStats(),
                                live=lambda: LIVE, on_version_refused=lambda: None)
        await batcher._slots.acquire()  # every slot busy: the loop waits with a batch in hand
        first = batcher.submit([["a"]], [[]], 1)
        queued = batcher.submit([["b"]], [[]], 1)
        runner = asyncio.create_task(batcher.run())
        await wait_until_async(lambda: batcher._queue.qsize() == 1, 5,
                               "the loop holding the first call, waiting for a slot")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        for future in (first, queued):
            with pytest.raises(ModelUnavailable):
                await asyncio.wait_for(future, 1)

    asyncio.run(run())
