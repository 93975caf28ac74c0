"""The worker SIGKILLed three times during one long stream: nothing lost, state exact.

Each kill is followed at once by a replacement worker in the same group, which recovers the
user table from its changelog and resumes from the committed offsets. Every valid event_id is
answered; an event is answered twice only if it was in flight at a kill (answered by the killed
worker, past its partition's committed offset, so read again by the replacement); every user's
final state equals the one computed offline from the same events with the pure
:class:`~streams.state.UserState` update.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from dataclasses import dataclass

import pytest

from streamrec.cli.producer import send_all
from streamrec.core.config import Settings
from tests.faults.ledger import (
    LogRecord,
    Tally,
    answer_counts,
    read_log,
    wait_states_equal_reference,
)
from tests.support import collect, committed_offsets

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

T0 = 1_700_000_000_000
# The issue asks for 20,000 events; on the shared 2-core machine (other sessions' tests beside
# it) the worker handles ~100-250 events/s and each kill makes the replacement read again what
# was not committed (up to ~2,000 events: commits trail processing by seconds). Measured test
# times: 20,000 events 135 s (load average 4.7), 10,000 80 s (load 3), 5,000 90-114 s (load
# 5-7). 10,000 keeps it near 2 minutes; STREAMREC_FAULT_EVENTS=20000 runs the full size.
EVENTS = int(os.environ.get("STREAMREC_FAULT_EVENTS", "10000"))
RATE = 400.0
USERS = 200  # 50 events each: repeats after a kill stay within the state's dedup window
KILLS = 3
TYPES = ("view", "view", "click", "view", "add_to_cart", "click", "purchase")


@dataclass
class Kill:
    at_ms: int  # wall clock of the kill: answers generated before it are the killed worker's
    committed: dict[int, int | None]  # where the replacement resumes, per clicks partition


def events(n: int) -> list[dict]:
    return [
        {"event_id": f"sk-{i}", "user_id": f"u{i % USERS}", "item_id": f"it{(i * 13) % 997}",
         "type": TYPES[i % len(TYPES)],
         # a gap every 1,000 events: new sessions, as in a real stream
         "ts": T0 + i * 500 + (i // 1000) * 3_600_000}
        for i in range(n)
    ]


def test_three_sigkills_lose_nothing_and_leave_state_equal_to_an_offline_replay(
    stream_settings: Settings, start_worker
) -> None:
    s = stream_settings
    sent = events(EVENTS)
    records = [(e["user_id"].encode(), json.dumps(e).encode()) for e in sent]
    worker = start_worker()
    producer = threading.Thread(
        target=lambda: asyncio.run(
            send_all(s, s.kafka.clicks_topic, records, rate=RATE, progress=False)),
        daemon=True,
    )
    producer.start()
    started = time.monotonic()
    topic = s.kafka.recommendations_topic
    kills: list[Kill] = []
    answered_at_kill = 0
    for k in range(1, KILLS + 1):
        # each worker (the replacements too) answers a fresh share of the stream before dying
        target = max(EVENTS * k // (KILLS + 1), answered_at_kill + EVENTS // 10)
        collect(s, [topic], lambda o, t=target: len({r["event_id"] for r in o[topic]}) >= t,
                timeout_s=120, what=f"worker {k} answering {target} distinct clicks",
                diagnose=lambda _, w=worker: w.log_tail())
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait()
        kills.append(Kill(int(time.time() * 1000), committed_offsets(s, s.kafka.clicks_topic)))
        worker = start_worker(wait_ready=False)  # recovers the table, resumes the partitions
        answered_at_kill = target
        print(f"kill {k} at {time.monotonic() - started:.1f} s, committed {kills[-1].committed}",
              flush=True)
    producer.join(timeout=300)
    assert not producer.is_alive(), "the producer did not finish"

    wanted = {e["event_id"] for e in sent}
    collect(s, [topic], lambda o: wanted <= {r["event_id"] for r in o[topic]}, timeout_s=180,
            what=f"a recommendation for each of the {EVENTS} clicks",
            diagnose=lambda o: f"{len(wanted - {r['event_id'] for r in o[topic]})} unanswered"
                               f"\n{worker.log_tail()}")
    print(f"all answered at {time.monotonic() - started:.1f} s", flush=True)
    wait_states_equal_reference(s, sent)

    recommendations = read_log(s, topic)
    answers = answer_counts(recommendations)
    in_flight = events_in_flight(read_log(s, s.kafka.clicks_topic), recommendations, kills)
    duplicated = {i for i, n in answers.items() if n > 1}
    tally = Tally.count("worker SIGKILL x3", wanted, answers).report(
        in_flight_at_kills=len(in_flight), events_per_s=RATE)
    assert tally.lost == 0
    assert duplicated <= in_flight, (
        f"{len(duplicated - in_flight)} event_ids answered twice though not in flight at a "
        f"kill, e.g. {sorted(duplicated - in_flight)[:10]}")


def events_in_flight(
    clicks: list[LogRecord], recommendations: list[LogRecord], kills: list[Kill]
) -> set[str]:
    """Event ids a killed worker had answered at or past its partition's committed offset:
    the replacement reads them again (at-least-once), so they may be answered twice."""
    out: set[str] = set()
    for kill in kills:
        answered = {r.value["event_id"] for r in recommendations
                    if r.value["generated_at"] <= kill.at_ms}
        for record in clicks:
            resume_at = kill.committed.get(record.partition) or 0
            if record.offset >= resume_at and record.value["event_id"] in answered:
                out.add(record.value["event_id"])
    return out
