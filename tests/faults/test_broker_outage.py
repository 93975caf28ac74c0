"""The broker unreachable for 20 s: the worker reconnects and catches up, nothing is lost.

A dedicated broker advertises the address of a loopback proxy in front of it, so the worker,
the test's producer and its readers all reach it through the proxy. With a backlog of clicks
waiting, the proxy resets every connection and refuses new ones for 20 s (a network partition
or a broker restart, as the worker sees it). The same worker process, without an operator,
reconnects, rejoins its group and answers every click, those sent after the outage included;
every user's state equals the offline reference (no loss, no double counting).
"""

from __future__ import annotations

import time

import pytest

from streamrec.core.config import Settings
from streamrec.core.embedded import free_port, start_kafka, stop_pid
from tests.faults.ledger import Tally, answer_counts, read_log, wait_states_equal_reference
from tests.faults.proxy import LoopbackProxy
from tests.support import collect, event_record, produce

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

T0 = 1_700_000_000_000
OUTAGE_S = 20.0


def batch(tag: str, n: int, start: int) -> list[dict]:
    return [{"event_id": f"{tag}-{i}", "user_id": f"u{i % 40}", "item_id": f"it{(i * 7) % 211}",
             "type": "view", "ts": T0 + (start + i) * 1000} for i in range(n)]


def test_worker_reconnects_and_catches_up_after_a_20_s_broker_outage(
    stream_env: dict[str, str], start_worker, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_port = free_port()
    broker = start_kafka(None, tmp_path / "kafka", advertised_port=proxy_port)
    proxy = LoopbackProxy(broker.port, port=proxy_port).start()
    worker = None
    try:
        stream_env["KAFKA_BOOTSTRAP_SERVERS"] = proxy.url  # the worker fixture reads this dict
        for key, value in stream_env.items():
            monkeypatch.setenv(key, value)
        s = Settings.from_env()
        topic = s.kafka.recommendations_topic
        worker = start_worker()

        before = batch("before", 1000, 0)
        produce(s, s.kafka.clicks_topic, [event_record(e) for e in before])  # a backlog
        collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= 200,
                what="the worker answering 200 clicks before the outage",
                diagnose=lambda _: worker.log_tail())

        proxy.cut()
        cut_at = time.monotonic()
        dropped = proxy.dropped
        while time.monotonic() - cut_at < OUTAGE_S:  # the outage itself, not a wait for a fact
            assert worker.proc.poll() is None, f"the worker exited:\n{worker.log_tail()}"
            time.sleep(0.5)
        proxy.restore()

        after = batch("after", 300, 1000)
        produce(s, s.kafka.clicks_topic, [event_record(e) for e in after])
        sent = [*before, *after]
        wanted = {e["event_id"] for e in sent}
        collect(s, [topic], lambda o: wanted <= {r["event_id"] for r in o[topic]},
                timeout_s=150, what=f"an answer to each of the {len(sent)} clicks",
                diagnose=lambda o: f"{len(wanted - {r['event_id'] for r in o[topic]})} "
                                   f"unanswered\n{worker.log_tail()}")
        assert worker.proc.poll() is None, "the worker was restarted"
        wait_states_equal_reference(s, sent)
        tally = Tally.count("broker unreachable 20 s", wanted, answer_counts(read_log(s, topic)))
        tally.report(connections_reset=dropped, outage_s=OUTAGE_S)
        assert tally.lost == 0
    finally:
        if worker is not None:
            stop_pid(worker.pid)  # while its broker is still there: a clean, quick exit
        proxy.stop()
        stop_pid(broker.pid)
