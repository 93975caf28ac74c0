"""Triton killed under a running worker: the fallback answers, then the model again.

The worker scores with Triton (the testing model, version 1). Triton is SIGKILLed mid-stream:
every event is still answered, from the stream recommenders (``model: "fallback"``), and the
worker stays up. Triton is restarted on the same ports: the model answers again without an
operator, which proves the circuit breaker did not stick open, and then every list comes from
the model. The client-level figures (a fallback within 100 ms) are in
tests/integration/serving/test_triton_outage.py.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.triton_server import TritonProcess, stop_triton
from streamrec.core.config import Settings
from tests.faults.ledger import Tally, answer_counts, read_log
from tests.support import collect, event_record, produce, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

T0 = 1_700_000_000_000
MODEL = "sasrec:1"


def test_worker_falls_back_while_triton_is_down_and_uses_the_model_again_after_restart(
    stream_env: dict[str, str], stream_settings: Settings, start_worker,
    serving_repo: Path, start_triton: Callable[..., TritonProcess],
) -> None:
    triton = start_triton(serving_repo)
    stream_env["TRITON_URL"] = triton.grpc_address
    stream_env["STREAMREC_TRITON__MODEL_REPOSITORY"] = str(serving_repo)
    # a loaded 2-core machine answers slower than the 80 ms production budget
    stream_env["STREAMREC_TRITON__TIMEOUT_S"] = "1.0"
    s = stream_settings
    worker = start_worker()
    topic = s.kafka.recommendations_topic
    counter = itertools.count()
    sent: list[dict] = []

    def send(n: int) -> list[dict]:
        batch = []
        for _ in range(n):
            i = next(counter)
            batch.append({"event_id": f"tr-{i}", "user_id": f"u{i % 7}",
                          "item_id": f"i{1 + (i * 11) % 300}", "type": "click",
                          "ts": T0 + i * 1000})
        produce(s, s.kafka.clicks_topic, [event_record(e) for e in batch])
        sent.extend(batch)
        return batch

    def answers_to(batch: list[dict], when: str) -> dict[str, dict]:
        wanted = {e["event_id"] for e in batch}
        out = collect(s, [topic], lambda o: wanted <= {r["event_id"] for r in o[topic]},
                      what=f"an answer to each of the {len(batch)} clicks {when}",
                      diagnose=lambda _: worker.log_tail())
        return {r["event_id"]: r for r in out[topic] if r["event_id"] in wanted}

    def model_answers(batch: list[dict], when: str) -> int:
        return sum(r["model"] == MODEL for r in answers_to(batch, when).values())

    wait_until(lambda: model_answers(send(10), "before the kill"), 60,
               "the model answering before the kill", interval_s=0.5,
               diagnose=worker.log_tail)

    os.killpg(triton.pid, signal.SIGKILL)  # the server and its python backend stubs
    stop_triton(triton)  # reaps it
    during = send(40)
    recs = answers_to(during, "while Triton is down")
    assert {r["model"] for r in recs.values()} == {"fallback"}, recs
    # lists from the stream recommenders; a few can be empty this early in a stream (seen in
    # 2 of 9 runs, for one user: reported, not asserted away)
    empty = sorted(i for i, r in recs.items() if not r["items"])
    assert len(empty) < len(during) // 2, empty
    assert worker.proc.poll() is None, worker.log_tail()

    start_triton(serving_repo, http_port=triton.http_port, grpc_port=triton.grpc_port,
                 metrics_port=triton.metrics_port)
    # the model answers again without an operator: the breaker's probes closed the circuit
    wait_until(lambda: model_answers(send(10), "after the restart"), 60,
               "the model answering again after Triton's restart", interval_s=0.5,
               diagnose=worker.log_tail)
    last = send(30)
    assert model_answers(last, "once the model is back") == len(last), "the breaker stuck"

    tally = Tally.count("Triton SIGKILL + restart", [e["event_id"] for e in sent],
                        answer_counts(read_log(s, topic))).report(
                            fallback_during=len(during), empty_fallback_lists=len(empty))
    assert tally.lost == 0 and tally.duplicated == 0
