"""An agent that crashes takes its worker down (non-zero exit), readiness withdrawn first.

The failure is a real one: the worker's Kafka producer is closed under it (as when its
connection is lost for good), so sending the batch's dead letter raises aiokafka's
``ProducerClosed``. That is not the record's fault, so the handler lets it escape (the batch
stays unacknowledged); the agent crashes and the worker must exit for a supervisor to restart it,
instead of staying alive and consuming nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from streamrec.core.config import Settings
from streamrec.core.embedded import pid_alive, stop_pid
from streams.runtime import WORKERS_READY_KEY, worker_identity
from tests.support import WorkerHandle, produce, wait_until, wait_worker_ready

REPO = Path(__file__).resolve().parents[2]
TRIGGER = b"close-the-producer-then-handle-me"
# the real worker, with one change: the batch holding TRIGGER first closes the worker's producer
WORKER_LOSING_ITS_PRODUCER = f"""
import sys
from streams.handlers import ClickBatchHandler

handle = ClickBatchHandler.handle

async def lose_the_producer_then_handle(self, batch):
    if any(event.value == {TRIGGER!r} for event in batch):
        await self.runtime.producer.stop()
    await handle(self, batch)

ClickBatchHandler.handle = lose_the_producer_then_handle
from streamrec.cli import main
sys.exit(main(["worker", "--loglevel", "info"]))
"""


def test_a_crashed_agent_withdraws_readiness_and_exits_non_zero(
    stream_settings: Settings, stream_env: dict[str, str], tmp_path: Path
) -> None:
    s = stream_settings
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_LOSING_ITS_PRODUCER], stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **stream_env},
            cwd=REPO, start_new_session=True,
        )
    worker = WorkerHandle(proc, log_path)
    client = redis.Redis.from_url(s.redis.url)
    try:
        wait_worker_ready(s.redis.url, worker)
        produce(s, s.kafka.clicks_topic, [(b"u1", TRIGGER)])
        wait_until(lambda: proc.poll() is not None, 60, "the worker exiting after its agent "
                   "crashed", diagnose=worker.log_tail)
        assert proc.returncode != 0, worker.log_tail()
        assert not client.hexists(WORKERS_READY_KEY, worker_identity(proc.pid))
        log = log_path.read_text(errors="replace")
        assert "agent clicks crashed" in log and "ProducerClosed" in log, worker.log_tail()
    finally:
        client.close()
        if pid_alive(proc.pid):
            stop_pid(proc.pid)
