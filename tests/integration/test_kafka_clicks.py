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
