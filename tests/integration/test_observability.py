"""A real worker's /metrics, /health and /ready, and its graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.core.config import Settings
from streamrec.core.embedded import free_port
from streams.malformed import mix_malformed
from tests.support import collect, committed_count, event_record, produce, wait_until

T0 = 1_700_000_000_000

# what an operator finds on /metrics once the worker has handled clicks (README, "Operations")
SERIES = (
    "streamrec_events_in_total", "streamrec_events_out_total", "streamrec_dead_letters_total",
    "streamrec_end_to_end_latency_seconds_bucket", "streamrec_end_to_end_latency_seconds_count",
    "streamrec_consumer_lag", "streamrec_consumer_committed_offset", "streamrec_consumer_highwater",
    "streamrec_assigned_partitions", "streamrec_model_version", "streamrec_fallbacks_total",
    "streamrec_drift_events_total", "streamrec_worker_ready", "streamrec_clicks_processed_total",
    "streamrec_process_resident_memory_bytes",
)


def events(n: int, users: int = 7) -> list[dict]:
    return [
        {"event_id": f"ev-{i}", "user_id": f"user-{i % users}", "item_id": f"item-{i % 31}",
         "type": "click", "ts": T0 + i * 1000}
        for i in range(n)
    ]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(f"{base}/metrics")
    assert status == 200, body
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body) for s in family.samples
    }


def total(found: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def test_metrics_health_and_ready_on_a_real_worker(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = start_worker(wait_ready=False,
                          extra_env={"STREAMREC_OBSERVABILITY__PORT": str(port)})
    wait_until(lambda: get(f"{base}/health")[0] == 200, 60, "/health answers 200",
               diagnose=worker.log_tail)
    wait_until(lambda: get(f"{base}/ready")[0] == 200, 90, "/ready answers 200",
               diagnose=lambda: get(f"{base}/ready")[1] + "\n" + worker.log_tail())
    ready = json.loads(get(f"{base}/ready")[1])
    assert ready["runtime_built"] and ready["started"] and ready["crashed"] is None

    good = events(200)
    mixed = mix_malformed(good, share=0.2)
    bad = [m for m in mixed if not m[2]]
    produce(s, s.kafka.clicks_topic, [(k, v) for k, v, _, _ in mixed])
    clicks, recs = s.kafka.clicks_topic, s.kafka.recommendations_topic

    def all_counted() -> dict:
        found = samples(base)
        done = (total(found, "streamrec_events_in_total", topic=clicks) >= len(mixed)
                and total(found, "streamrec_consumer_lag", topic=clicks) == 0)
        return found if done else {}

    found = wait_until(all_counted, 90, f"{len(mixed)} clicks counted in and committed",
                       diagnose=lambda: get(f"{base}/metrics")[1][-3000:])
    names = {name for name, _ in found}
    assert set(SERIES) <= names, set(SERIES) - names
    assert total(found, "streamrec_events_in_total", topic=clicks) == len(mixed)
    assert total(found, "streamrec_events_out_total", topic=recs) >= len(good)
    assert total(found, "streamrec_dead_letters_total") == len(bad)
    assert total(found, "streamrec_dead_letters_total", reason="other") < len(bad)
    assert total(found, "streamrec_end_to_end_latency_seconds_count") == len(mixed)
    assert total(found, "streamrec_clicks_processed_total") == len(good)
    # no Triton in this test: every answer is the stream recommenders' (model version 0)
    assert total(found, "streamrec_model_version") == 0
    assert total(found, "streamrec_consumer_committed_offset", topic=clicks) == len(mixed)
    assert total(found, "streamrec_worker_ready") == 1
    assert worker.proc.poll() is None, worker.log_tail()


def test_sigterm_commits_every_answered_event_and_exits_cleanly(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    # no periodic commit within the test: only the shutdown's commit can cover the answers
    worker = start_worker(extra_env={"STREAMREC_WORKER__COMMIT_INTERVAL_S": "600"})
    sent = events(300)
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in sent])
    topic = s.kafka.recommendations_topic
    collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= len(sent),
            what=f"an answer to each of the {len(sent)} clicks", diagnose=lambda _: "")
    assert committed_count(s, s.kafka.clicks_topic) < len(sent)  # nothing committed yet
    worker.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: worker.proc.poll() is not None, 60, "the worker exits after SIGTERM",
               diagnose=worker.log_tail)
    assert worker.proc.returncode == 0, worker.log_tail()
    assert committed_count(s, s.kafka.clicks_topic) == len(sent), worker.log_tail()


@pytest.mark.slow
def test_sigterm_mid_stream_loses_nothing_after_a_restart(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    worker = start_worker()
    sent = events(3000, users=23)
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in sent])
    topic = s.kafka.recommendations_topic
    collect(s, [topic], lambda o: len(o[topic]) >= 200, what="the first 200 answers")
    worker.proc.send_signal(signal.SIGTERM)  # while the worker is busy with the rest
    wait_until(lambda: worker.proc.poll() is not None, 60, "the worker exits after SIGTERM",
               diagnose=worker.log_tail)
    assert worker.proc.returncode == 0, worker.log_tail()
    restarted = start_worker()
    out = collect(s, [topic], lambda o: len({r["event_id"] for r in o[topic]}) >= len(sent),
                  timeout_s=120, what=f"an answer to each of the {len(sent)} clicks",
                  diagnose=lambda _: restarted.log_tail())
    assert {r["event_id"] for r in out[topic]} == {e["event_id"] for e in sent}
