"""Errors a user can cause print one clear line and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from streamrec.core.config import UserError
from streamrec.core.embedded import LOOPBACK, free_port


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamrec.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_broker_unreachable(tmp_path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":1}\n')
    line = one_line_error(run_cli("produce", "--file", str(events), env={
        "KAFKA_BOOTSTRAP_SERVERS": f"{LOOPBACK}:{free_port()}"}))
    assert "Kafka broker unreachable" in line


def test_port_taken(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(run_cli("up", "--no-triton", "--kafka-port", str(port), env={
            "STREAMREC_HOME": str(tmp_path)}))
    assert f"port {port}" in line and "already taken" in line


def test_missing_file() -> None:
    line = one_line_error(run_cli("produce", "--file", "/nonexistent/events.jsonl"))
    assert "no such file" in line


def test_dataset_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from training import data

    monkeypatch.setitem(sys.modules, "recbole", None)
    with pytest.raises(UserError, match="MovieLens-100K is not installed"):
        data.movielens_dir()


def test_no_stack_and_no_kafka(tmp_path) -> None:
    line = one_line_error(run_cli("tail", env={"STREAMREC_HOME": str(tmp_path),
                                               "KAFKA_BOOTSTRAP_SERVERS": ""}))
    assert "streamrec up" in line
