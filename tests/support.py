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

from streamrec.settings import Settings


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
    from streams.producer import send_all

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
