"""The user-state table in RocksDB (``STREAMREC_WORKER__STORE=rocksdb``) on real servers."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import redis

from streamrec.core.config import Settings
from tests.support import collect, event_record, produce, wait_until

T0 = 1_700_000_000_000
ROCKSDB = {"STREAMREC_WORKER__STORE": "rocksdb"}


def clicks(user: str, items: list[str], start: int) -> list[dict]:
    return [{"event_id": f"{user}-{start + i}", "user_id": user, "item_id": item,
             "type": "click", "ts": T0 + (start + i) * 1000} for i, item in enumerate(items)]


def test_a_rocksdb_worker_answers_and_keeps_state_across_a_restart(
    stream_settings: Settings, stream_env: dict[str, str], start_worker
) -> None:
    s = stream_settings
    topic = s.kafka.recommendations_topic
    r = redis.Redis.from_url(s.redis.url)
    worker = start_worker(extra_env=ROCKSDB)
    before = [e for u in ("ann", "bob", "cat")
              for e in clicks(u, [f"{u}-{n}" for n in range(8)], 0)]
    ids = {e["event_id"] for e in before}
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in before])
    collect(s, [topic], lambda o: {x["event_id"] for x in o[topic]} >= ids,
            what="an answer to each click before the restart", diagnose=lambda _: worker.log_tail())
    worker.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: worker.proc.poll() is not None, 60, "the worker exits after SIGTERM",
               diagnose=worker.log_tail)
    # the table lives in RocksDB databases on local disk (one per partition)
    home = Path(stream_env["STREAMREC_HOME"])
    assert any(home.glob("faust-data/**/CURRENT")), "no RocksDB database under the data dir"

    restarted = start_worker(extra_env=ROCKSDB)
    after = clicks("ann", ["ann-new"], 100)
    produce(s, s.kafka.clicks_topic, [event_record(e) for e in after])
    out = collect(s, [topic], lambda o: any(x["event_id"] == "ann-100" for x in o[topic]),
                  what="the answer to ann's click after the restart",
                  diagnose=lambda _: restarted.log_tail())
    answer = next(x for x in out[topic] if x["event_id"] == "ann-100")
    # ann's eight earlier items are still known: never recommended back to her
    assert not {f"ann-{n}" for n in range(8)} & {i["item_id"] for i in answer["items"]}
    wait_until(lambda: json.loads(r.get("user:ann:state") or "{}").get("recent_items", [])[-1:]
               == ["ann-new"], 20, "ann's state after the restart mirrored to Redis")
    state = json.loads(r.get("user:ann:state"))
    assert state["recent_items"] == [f"ann-{n}" for n in range(8)] + ["ann-new"]
