"""The worker's metrics, readiness facts, probe server and JSON log lines, without servers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from types import SimpleNamespace

import aiohttp
from prometheus_client import generate_latest

from streamrec.core.events import Rejection, parse_click
from streams.engine import EngineStats
from streams.malformed import MALFORMED_KINDS
from streams.observability import (
    REASON_CATEGORIES,
    ConsumerCollector,
    JsonLogFormatter,
    RuntimeCollector,
    WorkerMetrics,
    reason_category,
)
from streams.probes import ProbeServer, Readiness, ReadinessCollector

EVENT = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "click",
         "ts": 1_700_000_000_000}


def test_every_malformed_kind_has_a_category_from_the_bounded_set() -> None:
    categories = {}
    for kind, make in MALFORMED_KINDS.items():
        rejection = parse_click(make(dict(EVENT)), now_ms=EVENT["ts"])
        assert isinstance(rejection, Rejection), kind
        categories[kind] = reason_category(rejection.reason)
    assert set(categories.values()) <= set(REASON_CATEGORIES)
    assert "other" not in categories.values(), categories
    assert reason_category("handling failed: KeyError: 'x'") == "handler_error"
    # free text never becomes a label value
    assert reason_category("user 'alice' sent " + "x" * 10_000) == "other"


def message(timestamp: float | None) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(timestamp=timestamp))


def test_a_batch_counts_once_and_observes_latency_from_the_record_timestamp() -> None:
    metrics = WorkerMetrics(process=False)
    metrics.record_batch("clicks", [message(99.0), message(99.5), message(None)], now=100.0)
    metrics.record_batch("items", [message(1.0)], now=100.0, latency=False)
    assert metrics.value("streamrec_events_in_total", topic="clicks") == 3
    assert metrics.value("streamrec_events_in_total", topic="items") == 1
    assert metrics.value("streamrec_end_to_end_latency_seconds_count") == 2
    assert metrics.value("streamrec_end_to_end_latency_seconds_sum") == 1.5
    assert metrics.value("streamrec_end_to_end_latency_seconds_bucket", le="0.5") == 1


def fake_runtime(client: object | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        sent=Counter({"recommendations": 7, "clicks.dlq": 2}), dlq_count=2, mirror_failures=1,
        signals=SimpleNamespace(failures=3), engine=SimpleNamespace(
            stats=EngineStats(events=7, duplicates=1, model_answers=4, fallbacks=3)),
        feedback=SimpleNamespace(drifts=2), model_client=client,
    )


def test_runtime_counters_are_read_at_scrape_time() -> None:
    live = SimpleNamespace(model_name="sasrec", version=3)
    client = SimpleNamespace(
        live=live, circuit_state="half_open", breaker=SimpleNamespace(opens=5),
        stats=SimpleNamespace(errors=1, timeouts=2, circuit_rejections=9, version_switches=1),
    )
    runtime = fake_runtime(client)
    metrics = WorkerMetrics(process=False)
    metrics.watch(RuntimeCollector(runtime))
    value = metrics.value
    assert value("streamrec_events_out_total", topic="recommendations") == 7
    assert value("streamrec_fallbacks_total") == 3
    assert value("streamrec_drift_events_total") == 2
    assert value("streamrec_model_version", model="sasrec") == 3
    assert value("streamrec_circuit_breaker_state", state="half_open") == 1
    assert value("streamrec_circuit_breaker_state", state="open") == 0
    assert value("streamrec_model_errors_total", kind="timeout") == 2
    runtime.sent["recommendations"] += 1  # no registration: the next scrape sees it
    live.version = 4
    assert value("streamrec_events_out_total", topic="recommendations") == 8
    assert value("streamrec_model_version", model="sasrec") == 4


def test_without_triton_the_model_version_is_zero() -> None:
    metrics = WorkerMetrics(process=False)
    metrics.watch(RuntimeCollector(fake_runtime()))
    assert metrics.value("streamrec_model_version", model="none") == 0
    assert metrics.value("streamrec_circuit_breaker_state", state="closed") is None


def test_consumer_lag_is_highwater_minus_committed_per_assigned_partition() -> None:
    tp = SimpleNamespace
    assigned = [tp(topic="clicks", partition=0), tp(topic="clicks", partition=1),
                tp(topic="user-state-changelog", partition=0)]
    highwater = {("clicks", 0): 120, ("clicks", 1): None}
    committed = {("clicks", 0): 100}
    collector = ConsumerCollector(
        lambda: ["clicks", "items"], lambda: assigned,
        lambda t: highwater[(t.topic, t.partition)],
        lambda t: committed.get((t.topic, t.partition)),
    )
    metrics = WorkerMetrics(process=False)
    metrics.watch(collector)
    assert metrics.value("streamrec_consumer_lag", topic="clicks", partition="0") == 20
    assert metrics.value("streamrec_consumer_lag", topic="clicks", partition="1") is None
    assert metrics.value("streamrec_assigned_partitions", topic="clicks") == 2
    assert metrics.value("streamrec_assigned_partitions", topic="items") == 0
    assert metrics.value("streamrec_consumer_lag", topic="user-state-changelog",
                         partition="0") is None


def test_consumer_metrics_before_the_consumer_starts_are_empty_not_an_error() -> None:
    def not_started() -> list:
        raise RuntimeError("consumer not started")

    collector = ConsumerCollector(lambda: ["clicks"], not_started, lambda t: 0, lambda t: 0)
    metrics = WorkerMetrics(process=False)
    metrics.watch(collector)
    assert metrics.value("streamrec_assigned_partitions", topic="clicks") == 0


def test_probe_server_answers_health_ready_and_metrics_on_loopback() -> None:
    runtime: list[object] = []
    readiness = Readiness(runtime=lambda: runtime[0] if runtime else None)
    metrics = WorkerMetrics(process=False)
    metrics.registry.register(ReadinessCollector(readiness))
    server = ProbeServer("127.0.0.1", 0, readiness, lambda: [metrics.registry])

    async def scenario() -> list[tuple[int, str]]:
        address = await server.start()
        answers = []
        try:
            async with aiohttp.ClientSession() as http:
                async def get(path: str) -> None:
                    async with http.get(f"http://{address}{path}") as response:
                        answers.append((response.status, await response.text()))

                await get("/health")
                await get("/ready")  # no runtime yet
                runtime.append(object())
                readiness.started = True
                await get("/ready")
                metrics.record_dead_letter("malformed JSON: Expecting value")
                await get("/metrics")
                readiness.record_crash("agent handle_clicks crashed: ValueError")
                await get("/ready")
        finally:
            await server.stop()
        return answers

    health, not_ready, ready, scraped, crashed = asyncio.run(scenario())
    assert health[0] == 200
    assert not_ready[0] == 503 and json.loads(not_ready[1])["runtime_built"] is False
    assert ready[0] == 200 and json.loads(ready[1])["ready"] is True
    assert scraped[0] == 200
    assert 'streamrec_dead_letters_total{reason="malformed_json"} 1.0' in scraped[1]
    assert "streamrec_worker_ready 1.0" in scraped[1]
    assert crashed[0] == 503 and "ValueError" in json.loads(crashed[1])["crashed"]


def test_readiness_fails_once_the_pending_runtime_records_a_crash() -> None:
    pending = SimpleNamespace(runtime=object(), crash_reason=None)
    readiness = Readiness(runtime=lambda: pending.runtime, crash=lambda: pending.crash_reason,
                          started=True)
    assert readiness.check()[0]
    pending.crash_reason = ValueError("boom")
    assert readiness.check() == (False, {"runtime_built": True, "started": True,
                                         "rebalancing": False, "partitions": 0,
                                         "crashed": "ValueError: boom"})


def test_json_log_lines_are_objects_with_the_worker_identity() -> None:
    formatter = JsonLogFormatter(worker="host:1", max_chars=50)
    record = logging.LogRecord("streams.runtime", logging.WARNING, __file__, 1,
                               "Redis mirror failed (%d so far): %s", (3, "x" * 100), None)
    line = json.loads(formatter.format(record))
    assert line["level"] == "warning" and line["worker"] == "host:1"
    assert line["logger"] == "streams.runtime" and len(line["message"]) == 50


def test_the_worker_registry_renders_the_prometheus_text_format() -> None:
    metrics = WorkerMetrics()
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE streamrec_end_to_end_latency_seconds histogram" in text
    assert "streamrec_process_resident_memory_bytes" in text
