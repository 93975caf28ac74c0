"""Fixtures: the real broker and Redis on 127.0.0.1 at free ports, stopped by PID.

Each test that runs a worker gets its own app id and topic names (a consumer closed during a
pending join can wedge a group on the embedded broker for good) and a flushed Redis database.
The cost markers (unit, integration, faults) are set by folder in the repository's conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamrec.core.config import Settings
from streamrec.core.embedded import ServerProcess, pid_alive, start_kafka, start_redis, stop_pid
from tests.support import WorkerHandle, wait_worker_ready

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def kafka_server(server_logs: Path) -> Iterator[ServerProcess]:
    server = start_kafka(None, server_logs)
    yield server
    stop_pid(server.pid)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_server: ServerProcess) -> str:
    return kafka_server.address


@pytest.fixture(scope="session")
def redis_server(server_logs: Path) -> Iterator[ServerProcess]:
    server = start_redis(None, server_logs)
    yield server
    stop_pid(server.pid)


@pytest.fixture
def redis_url(redis_server: ServerProcess) -> str:
    import redis

    url = f"redis://{redis_server.address}/0"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def stream_env(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> dict[str, str]:
    """Environment for one isolated streamrec deployment on the shared servers."""
    tag = uuid.uuid4().hex[:8]
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REDIS_URL": redis_url,
        "TRITON_URL": "",
        "STREAMREC_KAFKA__PROFILE": "embedded",
        "STREAMREC_HOME": str(tmp_path / "home"),
        "STREAMREC_WORKER__APP_ID": f"streamrec-test-{tag}",
        "STREAMREC_KAFKA__CLICKS_TOPIC": f"clicks-{tag}",
        "STREAMREC_KAFKA__DLQ_TOPIC": f"clicks-{tag}.dlq",
        "STREAMREC_KAFKA__ITEMS_TOPIC": f"items-{tag}",
        "STREAMREC_KAFKA__RECOMMENDATIONS_TOPIC": f"recommendations-{tag}",
        "STREAMREC_KAFKA__MODEL_EVENTS_TOPIC": f"model-events-{tag}",
        "STREAMREC_KAFKA__IMPRESSIONS_TOPIC": f"impressions-{tag}",
        # several workers per test: /metrics on any free port (published in workers:ready)
        "STREAMREC_OBSERVABILITY__PORT": "0",
    }


@pytest.fixture
def stream_settings(stream_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in stream_env.items():
        monkeypatch.setenv(key, value)
    return Settings.from_env()


@pytest.fixture
def start_worker(
    stream_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerHandle]]:
    """Start ``streamrec worker`` processes; each is stopped by PID at teardown."""
    started: list[WorkerHandle] = []

    def start(wait_ready: bool = True, extra_env: dict[str, str] | None = None) -> WorkerHandle:
        log_path = tmp_path / f"worker-{len(started)}.log"
        env = {**os.environ, **stream_env, **(extra_env or {})}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streamrec.cli", "worker", "--loglevel", "info"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=REPO, start_new_session=True,
            )
        handle = WorkerHandle(proc, log_path)
        started.append(handle)
        if wait_ready:
            wait_worker_ready(stream_env["REDIS_URL"], handle)
        return handle

    yield start
    for handle in started:
        if pid_alive(handle.pid):
            stop_pid(handle.pid)


