"""``streamrec up`` / ``streamrec down``: the embedded stack on 127.0.0.1.

``up`` starts what is not configured (Kafka when ``KAFKA_BOOTSTRAP_SERVERS`` is unset, Redis when
``REDIS_URL`` is unset, Triton when ``TRITON_URL`` is unset and a model version exists), waits
until each answers and records addresses and PIDs in ``<home>/stack.json``. ``down`` stops
exactly those PIDs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from streamrec.core.atomic import write_json_atomic
from streamrec.core.config import Settings, UserError
from streamrec.core.embedded import pid_alive, start_kafka, start_redis, stop_pid


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the embedded Kafka, Redis and Triton on 127.0.0.1")
    up.add_argument("--kafka-port", type=int, default=None)
    up.add_argument("--redis-port", type=int, default=None)
    up.add_argument("--no-triton", action="store_true", help="do not start Triton")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the embedded stack (topics and offsets are lost)")
    down.set_defaults(func=cmd_down)


def stack_up(
    settings: Settings,
    *,
    kafka_port: int | None = None,
    redis_port: int | None = None,
    triton: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    """Start the missing services and record them; returns the stack record."""
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    stack = settings.embedded_stack()
    if stack.get("pids") and any(pid_alive(p) for p in stack["pids"].values()):
        raise UserError(f"an embedded stack is already running ({settings.stack_file}); "
                        "run `streamrec down` first")
    stack = {"pids": {}, "started_by": os.getpid()}
    logs = home / "logs"
    try:
        if settings.kafka.bootstrap_servers:
            stack["kafka_external"] = settings.kafka.bootstrap_servers
        else:
            kafka = start_kafka(kafka_port, logs)
            stack["kafka"], stack["pids"]["kafka"] = kafka.address, kafka.pid
            _say(echo, f"kafka  (tansu, in-memory)  {kafka.address}  pid {kafka.pid}")
        if settings.redis.url:
            stack["redis_external"] = settings.redis.url
        else:
            redis = start_redis(redis_port, logs)
            stack["redis"] = f"redis://{redis.address}/0"
            stack["pids"]["redis"] = redis.pid
            _say(echo, f"redis  (redis-server 6.2)  {redis.address}  pid {redis.pid}")
        if triton and not settings.triton.url:
            _start_triton(settings, stack, logs, echo)
    except BaseException:
        for pid in stack["pids"].values():
            stop_pid(pid)
        raise
    write_json_atomic(settings.stack_file, stack)
    return stack


def _start_triton(settings: Settings, stack: dict[str, Any], logs: Path, echo: bool) -> None:
    try:
        from inference.triton_server import start_embedded_triton
    except ImportError:
        return
    server = start_embedded_triton(settings, logs)
    if server is None:
        _say(echo, "triton (not started: no model version in model_repository/ yet)")
        return
    stack["triton_grpc"] = server.grpc_address
    stack["triton_http"] = server.http_address
    stack["pids"]["triton"] = server.pid
    _say(echo, f"triton (CPU, python backend) {server.grpc_address}  pid {server.pid}")


def stack_down(settings: Settings, echo: bool = True) -> int:
    stack = settings.embedded_stack()
    pids: dict[str, int] = stack.get("pids", {})
    for name, pid in pids.items():
        if pid_alive(pid):
            stop_pid(pid)
            _say(echo, f"stopped {name} (pid {pid})")
    if settings.stack_file.exists():
        settings.stack_file.unlink()
    return len(pids)


def cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    stack_up(
        settings, kafka_port=args.kafka_port, redis_port=args.redis_port,
        triton=not args.no_triton,
    )
    print(f"recorded in {settings.stack_file}; stop with `streamrec down`")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if stack_down(Settings.from_env()) == 0:
        print("no embedded stack was running")
    return 0


def _say(echo: bool, line: str) -> None:
    if echo:
        print(line, flush=True)
