"""Bookkeeping shared by the fault tests: what was sent, answered, duplicated, lost.

- :func:`read_log` reads a topic from the beginning, with each record's partition and offset,
  until a fetch brings nothing new (the embedded broker's ``end_offsets()`` is not trusted).
- :class:`Tally` counts by ``event_id`` (the key consumers dedupe on) and prints one line
  ``FAULT-TALLY {...}`` per fault (``pytest -s`` shows them; the README's table comes from them).
- :func:`reference_summaries` replays the events offline through the pure
  :class:`~streams.state.UserState` update; :func:`wait_states_equal_reference` waits until the
  worker's Redis mirror of every user equals it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from streamrec.core.config import Settings
from streamrec.core.events import ClickEvent, parse_click
from streams.components import state_config
from streams.state import UserState
from tests.support import start_reader, wait_until


@dataclass(frozen=True)
class LogRecord:
    partition: int
    offset: int
    value: dict[str, Any]


def read_log(settings: Settings, topic: str, idle_s: float = 1.0,
             timeout_s: float = 60.0) -> list[LogRecord]:
    """Every record of ``topic`` so far, read until no fetch brings anything for ``idle_s``."""

    async def run() -> list[LogRecord]:
        consumer = await start_reader(settings, [topic])
        out: list[LogRecord] = []
        try:
            deadline = time.monotonic() + timeout_s
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < idle_s:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic} kept growing for {timeout_s:g} s")
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, messages in batches.items():
                    out.extend(LogRecord(tp.partition, m.offset, json.loads(m.value))
                               for m in messages)
                    quiet_since = time.monotonic()
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def answer_counts(records: Iterable[LogRecord | dict[str, Any]]) -> Counter[str]:
    """How many recommendations each event_id got."""
    return Counter((r.value if isinstance(r, LogRecord) else r)["event_id"] for r in records)


@dataclass(frozen=True)
class Tally:
    """One fault's numbers, by event_id: sent, answered (distinct), duplicated, lost."""

    fault: str
    sent: int
    answered: int
    duplicated: int  # answers beyond the first, summed over event_ids
    duplicated_events: int  # event_ids answered more than once
    lost: int  # sent, never answered

    @classmethod
    def count(cls, fault: str, sent_ids: Iterable[str], answers: Counter[str]) -> Tally:
        sent = set(sent_ids)
        answered = {i for i in sent if answers.get(i)}
        return cls(
            fault=fault, sent=len(sent), answered=len(answered),
            duplicated=sum(answers[i] - 1 for i in answered),
            duplicated_events=sum(answers[i] > 1 for i in answered),
            lost=len(sent - answered),
        )

    def report(self, **extra: Any) -> Tally:
        print(f"\nFAULT-TALLY {json.dumps({**asdict(self), **extra})}", flush=True)
        return self


def click(event: dict[str, Any]) -> ClickEvent:
    parsed = parse_click(json.dumps(event).encode())
    assert isinstance(parsed, ClickEvent), parsed
    return parsed


def reference_summaries(settings: Settings, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Each user's state summary (the Redis mirror's form) computed offline from ``events``,
    in the order sent (one user's events share a partition, so the worker sees that order).
    No catalogue is published in these tests, so events carry no categories."""
    config = state_config(settings)
    states: dict[str, UserState] = {}
    for event in events:
        state = states.setdefault(event["user_id"], UserState(event["user_id"]))
        state.update(click(event), (), config)
    half_life = settings.engine.interest_half_life_ms
    return {u: json.loads(json.dumps(s.summary(half_life))) for u, s in states.items()}


def mirrored_summaries(settings: Settings, users: Iterable[str]) -> dict[str, Any]:
    import redis

    from streams.serving_state import state_key

    client = redis.Redis.from_url(settings.redis.url)
    try:
        users = list(users)
        values = client.mget([state_key(u) for u in users]) if users else []
    finally:
        client.close()
    return {u: json.loads(v) if v else None for u, v in zip(users, values, strict=True)}


def wait_states_equal_reference(
    settings: Settings, events: list[dict[str, Any]], timeout_s: float = 30.0
) -> None:
    """Wait until every user's mirrored state equals the offline reference (no loss, no
    double counting); fail naming the users that differ."""
    reference = reference_summaries(settings, events)
    seen: dict[str, Any] = {}

    def equal() -> bool:
        seen.update(mirrored_summaries(settings, reference))
        return all(seen[u] == reference[u] for u in reference)

    def differences() -> str:
        wrong = [u for u in reference if seen.get(u) != reference[u]]
        examples = "\n".join(f"{u}: mirrored {seen.get(u)}\n    reference {reference[u]}"
                             for u in wrong[:3])
        return f"{len(wrong)} of {len(reference)} users differ, e.g.\n{examples}"

    wait_until(equal, timeout_s, "every user's mirrored state equal to the offline reference",
               interval_s=0.5, diagnose=differences)
