"""Training reads the click history back from the real broker: every event once, in order."""

from __future__ import annotations

import json
import uuid

from kafka import KafkaProducer

from training.data import read_clicks_from_kafka


def test_kafka_replay_reads_everything_once(kafka_bootstrap: str) -> None:
    topic = f"clicks-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20)  # batched
    for i in range(500):
        event = {"event_id": f"e{i}", "user_id": f"u{i % 7}", "item_id": f"i{i % 13}",
                 "type": "click", "ts": 1_700_000_000_000 + i}
        producer.send(topic, json.dumps(event).encode(), key=event["user_id"].encode())
    producer.send(topic, b"not json")
    producer.send(topic, json.dumps({"event_id": "e3", "user_id": "u3", "item_id": "i3",
                                     "type": "click", "ts": 1_700_000_000_003}).encode())
    producer.flush()
    producer.close()
    data = read_clicks_from_kafka(kafka_bootstrap, topic)
    rows = list(data)
    assert len(rows) == 500  # the bad record skipped, the repeated event_id counted once
    assert [ts for _, _, ts in rows] == sorted(ts for _, _, ts in rows)
    assert rows[0] == ("u0", "i0", 1_700_000_000_000)
    recent = read_clicks_from_kafka(kafka_bootstrap, topic, since_ts=1_700_000_000_400)
    assert len(recent) == 100


def test_kafka_replay_of_a_topic_still_being_written_ends_at_until(kafka_bootstrap: str) -> None:
    """A live stream never gives the empty polls that end a replay: with ``until_ms`` the read
    ends once every partition has caught up with that moment, and leaves out what came after."""
    import threading
    import time

    topic = f"clicks-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    sent: list[int] = []
    stop = threading.Event()

    def write(i: int) -> None:
        event = {"event_id": f"e{i}", "user_id": f"u{i % 7}", "item_id": f"i{i % 13}",
                 "type": "click", "ts": 1_700_000_000_000 + i}
        producer.send(topic, json.dumps(event).encode(), key=event["user_id"].encode())
        sent.append(i)

    for i in range(200):
        write(i)
    producer.flush()
    until_ms = int(time.time() * 1000)

    def keep_writing() -> None:  # the live stream, until the read has returned
        i = 200
        # later records are produced after until_ms: the producer stamps int(time * 1000), so
        # wait until that integer has passed (time * 1000 just above until_ms still stamps it)
        while int(time.time() * 1000) <= until_ms:
            stop.wait(0.001)
        while not stop.is_set():
            write(i)
            producer.flush()
            i += 1
            stop.wait(0.01)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        data = read_clicks_from_kafka(kafka_bootstrap, topic, until_ms=until_ms)
        still_writing = writer.is_alive()
    finally:
        stop.set()
        writer.join(timeout=10)
        producer.close()
    assert still_writing  # the read ended while the topic was still being written
    assert len(data) == 200, len(data)  # exactly the clicks produced before until_ms
    assert len(sent) > 200
