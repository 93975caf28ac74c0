"""Helpers for tests that talk to the real broker, Redis and workers."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from streamrec.core.config import Settings

T = TypeVar("T")

Records = dict[str, list[dict[str, Any]]]


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 0.1,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition()`` until it returns something truthy, and return that.

    A test waits for the fact it needs rather than sleeping: on timeout this fails with
    "``what`` did not happen within N s" plus ``diagnose()`` (a worker's log tail, the values
    seen last). An exception raised by ``condition`` (a worker that died) fails at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(never_happened(what, timeout_s, diagnose))
        time.sleep(interval_s)


async def wait_until_async(
    condition: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    what: str,
    *,
    interval_s: float = 0.05,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """:func:`wait_until` inside an event loop; ``condition`` may be a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(never_happened(what, timeout_s, diagnose))
        await asyncio.sleep(interval_s)


def never_happened(what: str, timeout_s: float, diagnose: Callable[[], str] | None) -> str:
    message = f"{what}: did not happen within {timeout_s:g} s"
    return f"{message}\n{diagnose()}" if diagnose else message


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

    from streams.runtime import WORKERS_READY_KEY, worker_identity

    client = redis.Redis.from_url(redis_url)

    def ready() -> bool:
        if handle.proc.poll() is not None:
            raise AssertionError(f"worker {handle.pid} exited early:\n{handle.log_tail()}")
        return bool(client.hexists(WORKERS_READY_KEY, worker_identity(handle.pid)))

    try:
        wait_until(ready, timeout_s, f"worker {handle.pid} ready", diagnose=handle.log_tail)
    finally:
        client.close()


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from streamrec.cli.producer import send_all

    asyncio.run(send_all(settings, topic, records, progress=False))


def event_record(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return event["user_id"].encode(), json.dumps(event).encode()


def collect(
    settings: Settings,
    topics: list[str],
    until: Callable[[Records], bool],
    timeout_s: float = 60.0,
    *,
    what: str,
    diagnose: Callable[[Records], str] | None = None,
) -> Records:
    """Read ``topics`` from the beginning until ``until(records_by_topic)`` holds.

    Fails after ``timeout_s`` naming ``what`` was awaited, how many records each topic gave, and
    ``diagnose(records_by_topic)`` (e.g. which events are still unanswered).
    """
    out: Records = {t: [] for t in topics}

    def read_so_far() -> str:
        counts = ", ".join(f"{topic}: {len(records)}" for topic, records in out.items())
        return f"records read: {counts}" + (f"\n{diagnose(out)}" if diagnose else "")

    async def run() -> None:
        consumer = await start_reader(settings, topics)

        async def read_until_done() -> bool:
            if until(out):
                return True
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batches.values():
                for msg in messages:
                    value = json.loads(msg.value)
                    value["_key"] = msg.key.decode(errors="replace") if msg.key else None
                    out[msg.topic].append(value)
            return until(out)

        try:
            await wait_until_async(read_until_done, timeout_s, what, interval_s=0,
                                   diagnose=read_so_far)
        finally:
            await consumer.stop()

    asyncio.run(run())
    return out


async def start_reader(settings: Settings, topics: list[str]) -> Any:
    """A consumer assigned every partition of ``topics`` from the beginning, in no group.

    No group means no join (seconds on the embedded broker) and nothing committed: reading
    never disturbs the workers' group. Waits for the topics to exist.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.require_kafka(), group_id=None, enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka.broker.get("fetch_max_wait_ms") or 500,
    )
    await consumer.start()

    async def every_partition() -> list[TopicPartition]:
        await consumer.topics()  # refreshes the cluster's metadata
        found = {t: consumer.partitions_for_topic(t) or set() for t in topics}
        if not all(found.values()):
            return []
        return [TopicPartition(t, p) for t, ps in found.items() for p in sorted(ps)]

    try:
        partitions = await wait_until_async(every_partition, 30, f"topics {topics} created",
                                            interval_s=0.2)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


def committed_offsets(settings: Settings, topic: str) -> dict[int, int | None]:
    """The worker group's committed offset per partition of ``topic`` (OffsetFetch; no join)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def run() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.require_kafka(),
                                    group_id=settings.worker.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # fetches the cluster's metadata
            partitions = consumer.partitions_for_topic(topic) or set()
            return {p: await consumer.committed(TopicPartition(topic, p))
                    for p in sorted(partitions)}
        finally:
            await consumer.stop()

    return asyncio.run(run())


def committed_count(settings: Settings, topic: str) -> int:
    """How many records of ``topic`` the worker group's committed offsets cover."""
    return sum(offset or 0 for offset in committed_offsets(settings, topic).values())


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
    topic = s.kafka.recommendations_topic
    by_id = {e["event_id"]: e for e in sent}

    def unanswered(out: Records) -> list[str]:
        answered = {r["event_id"] for r in out[topic]}
        return [i for i in by_id if i not in answered]

    def which_unanswered(out: Records) -> str:
        missing = unanswered(out)
        logs = "\n".join(f"--- worker {w.pid}\n{w.log_tail(20)}" for w in workers)
        return (f"{len(missing)} unanswered, e.g. "
                f"{[(i, by_id[i]['user_id']) for i in missing[:40]]}\n{logs}")

    out = collect(s, [topic], lambda o: not unanswered(o), timeout_s=120,
                  what=f"a recommendation for each of the {len(sent)} events sent",
                  diagnose=which_unanswered)
    assert {r["event_id"] for r in out[topic]} == set(by_id)

    per_user = Counter(e["user_id"] for e in sent)
    seen: dict[str, Any] = {}

    def states_when_counts_exact() -> dict[str, dict[str, Any]] | None:
        states = {u: json.loads(client.get(f"user:{u}:state") or "{}") for u in per_user}
        seen["counts"] = {u: st.get("counts", {}).get("view") for u, st in states.items()}
        return states if seen["counts"] == dict(per_user) else None

    client = redis.Redis.from_url(s.redis.url)
    try:
        states = wait_until(states_when_counts_exact, 20,
                            "every user's mirrored view count equal to the views sent",
                            interval_s=0.5,
                            diagnose=lambda: f"counts {seen['counts']}\nsent {dict(per_user)}")
    finally:
        client.close()
    for u in per_user:
        last = [e["item_id"] for e in sent if e["user_id"] == u][-10:]
        assert states[u]["recent_items"] == last, u
