"""Helpers for tests that talk to the real broker, Redis and workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core.config import Settings


@dataclass
class WorkerHandle:
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def wait_worker_ready(redis_url: str, handle: WorkerHandle, timeout_s: float = 90.0) -> None:
    import redis

    from streams.app import WORKERS_READY_KEY

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if client.hexists(WORKERS_READY_KEY, str(handle.pid)):
                return
            if handle.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{handle.log_tail()}")
            time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"worker not ready in {timeout_s} s:\n{handle.log_tail()}")


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from streamrec.cli.producer import send_all

    asyncio.run(send_all(settings, topic, records, progress=False))


def event_record(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["user_id"].encode(), json.dumps(event).encode()


def collect(
    settings: Settings,
    topics: list[str],
    until: Callable[[dict[str, list[dict[str, Any]]]], bool],
    timeout_s: float = 60.0,
) -> dict[str, list[dict[str, Any]]]:
    """Read ``topics`` from the beginning until ``until(records_by_topic)`` or timeout."""
    from streams.kafka_io import start_consumer

    async def run() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        consumer = await start_consumer(settings, *topics, from_beginning=True)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not until(out):
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for messages in batches.values():
                    for msg in messages:
                        value = json.loads(msg.value)
                        value["_key"] = msg.key.decode() if msg.key else None
                        out[msg.topic].append(value)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def assert_every_event_answered_with_exact_state(
    settings: Settings, sent: list[dict[str, Any]], *workers: WorkerHandle
) -> None:
    """Every sent event_id has a recommendation, and every user's mirrored state is exact.

    Exact means no loss and no double counting of events read again after a crash or a
    rebalance: each user's view count equals what was sent, and the recent items are the last
    ten sent. ``sent`` holds "view" events with distinct event_ids.
    """
    from collections import Counter

    import redis

    s = settings
    out = collect(s, [s.recommendations_topic],
                  lambda o: len({r["event_id"] for r in o[s.recommendations_topic]}) >= len(sent),
                  timeout_s=120)
    answered = {r["event_id"] for r in out[s.recommendations_topic]}
    by_id = {e["event_id"]: e for e in sent}
    missing = [i for i in by_id if i not in answered]
    assert not missing, (len(missing), [(i, by_id[i]["user_id"]) for i in missing][:40],
                         [w.log_tail(20) for w in workers])
    assert answered == set(by_id)
    per_user = Counter(e["user_id"] for e in sent)
    client = redis.Redis.from_url(s.redis_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            states = {u: json.loads(client.get(f"user:{u}:state") or "{}") for u in per_user}
            counts = {u: st.get("counts", {}).get("view") for u, st in states.items()}
            if counts == dict(per_user) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        client.close()
    assert counts == dict(per_user)
    for u in per_user:
        last = [e["item_id"] for e in sent if e["user_id"] == u][-10:]
        assert states[u]["recent_items"] == last, u
