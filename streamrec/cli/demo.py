"""``streamrec demo``: the whole loop on the embedded default, measured from the outside.

up -> worker(s) -> replay N MovieLens events with malformed ones mixed in -> wait until every
valid event has its recommendation and every malformed one its dead letter -> summary -> down.
Latency is measured by the consumer, from just before each event is produced to the receipt of
its recommendation (wall clock, one machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamrec.cli.producer import movielens_events, movielens_items, send_all
from streamrec.core.config import Settings, UserError
from streamrec.core.embedded import pid_alive, stop_pid
from streamrec.core.metrics import percentile
from streamrec.core.ports import FALLBACK
from streams.kafka_io import ensure_topics, start_consumer
from streams.malformed import mix_malformed
from streams.runtime import WORKERS_READY_KEY, worker_identity


@dataclass
class DemoOptions:
    events: int = 2000
    malformed_share: float = 0.01
    rate: float = 0.0
    workers: int = 1
    use_model: bool = True
    timeout_s: float = 300.0
    as_json: bool = False


@dataclass
class DemoResult:
    sent_at: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    worker_ms: list[float] = field(default_factory=list)
    answered: set[str] = field(default_factory=set)
    models: dict[str, int] = field(default_factory=dict)
    dlq: int = 0
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    first_sent: float = 0.0
    last_received: float = 0.0


def start_workers(settings: Settings, n: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    port = settings.observability.port
    for i in range(n):
        # worker i serves /metrics on port + i (9464, 9465, ...); 0 stays "any free port"
        worker_env = {**env, "STREAMREC_OBSERVABILITY__PORT": str(port + i if port else 0)}
        with open(logs / f"worker-{i}.log", "ab") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streamrec.cli", "worker", "--loglevel", "info"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=worker_env, start_new_session=True,
                )
            )
    return procs


async def wait_for_workers(
    settings: Settings, procs: list[subprocess.Popen[bytes]], timeout_s: float = 90.0
) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.require_redis(), **settings.redis_options())
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready = {key.decode() for key in await client.hkeys(WORKERS_READY_KEY)}
            if all(worker_identity(p.pid) in ready for p in procs):
                return
            for p in procs:
                if p.poll() is not None:
                    raise UserError(
                        f"worker pid {p.pid} exited with code {p.returncode}; see "
                        f"{settings.home / 'logs'}"
                    )
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    raise UserError(f"workers not ready within {timeout_s:.0f} s; see {settings.home / 'logs'}")


async def replay_and_collect(settings: Settings, options: DemoOptions) -> tuple[
    DemoResult, int, int, set[str]
]:
    events = movielens_events()[: options.events]
    records = mix_malformed(events, options.malformed_share)
    n_valid = sum(1 for r in records if r[2])
    n_bad = len(records) - n_valid
    users = {e["user_id"] for e in events}
    result = DemoResult()
    consumer = await start_consumer(
        settings, settings.kafka.recommendations_topic, settings.kafka.dlq_topic,
        from_beginning=True,
    )
    items = movielens_items()
    await send_all(
        settings, settings.kafka.items_topic,
        ((i["item_id"].encode(), json.dumps(i).encode()) for i in items),
        total=len(items), progress=False,
    )

    def on_sent(key: bytes | None, value: bytes) -> None:
        now = time.perf_counter()
        if not result.first_sent:
            result.first_sent = now
        try:
            event_id = json.loads(value).get("event_id")
        except (ValueError, AttributeError, UnicodeDecodeError):
            return
        if isinstance(event_id, str):
            result.sent_at.setdefault(event_id, now)

    valid_ids = {e["event_id"] for e in events}
    bar = tqdm(total=len(records), desc="answers", unit="ev", file=sys.stderr, leave=False,
               disable=options.as_json and not sys.stderr.isatty())

    async def collect() -> None:
        deadline = time.monotonic() + options.timeout_s
        while time.monotonic() < deadline:
            if len(result.answered) >= n_valid and result.dlq >= n_bad:
                return
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            now = time.perf_counter()
            for messages in batches.values():
                for msg in messages:
                    value = json.loads(msg.value)
                    if msg.topic == settings.kafka.dlq_topic:
                        result.dlq += 1
                        reason = value["reason"].split(":")[0][:60]
                        result.dlq_reasons[reason] = result.dlq_reasons.get(reason, 0) + 1
                        bar.update(1)
                        continue
                    event_id = value["event_id"]
                    if event_id in result.answered or event_id not in valid_ids:
                        continue  # consumers dedupe by event_id (at-least-once delivery)
                    result.answered.add(event_id)
                    result.models[value["model"]] = result.models.get(value["model"], 0) + 1
                    result.worker_ms.append(float(value.get("latency_ms", 0.0)))
                    if event_id in result.sent_at:
                        result.latencies_ms.append((now - result.sent_at[event_id]) * 1000)
                    result.last_received = now
                    bar.update(1)

    collector = asyncio.create_task(collect())
    await send_all(
        settings, settings.kafka.clicks_topic, ((k, v) for k, v, _, _ in records),
        total=len(records), rate=options.rate, progress=False, on_sent=on_sent,
    )
    await collector
    bar.close()
    await consumer.stop()
    return result, n_valid, n_bad, users


def run_demo(base: Settings, options: DemoOptions) -> int:
    from streamrec.cli.stack import stack_down, stack_up

    home = Path(base.home)
    settings = base
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if options.as_json else print
    say(f"streamrec demo: {options.events} MovieLens-100K events, "
        f"{options.malformed_share:.0%} malformed, {options.workers} worker(s)")
    if options.use_model:
        _ensure_model(settings, say)
    stack = stack_up(settings, triton=options.use_model, echo=not options.as_json)
    settings = settings.resolved()
    env = {**os.environ, "STREAMREC_HOME": str(home.resolve())}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(ensure_topics(settings))
        procs = start_workers(settings, options.workers, env)
        say("waiting for the worker(s) to join the group ...")
        asyncio.run(wait_for_workers(settings, procs))
        say("replaying ...")
        result, n_valid, n_bad, users = asyncio.run(replay_and_collect(settings, options))
    finally:
        for p in procs:
            if pid_alive(p.pid):
                stop_pid(p.pid)
        stack_down(settings, echo=False)
    summary = _summary(options, stack, result, n_valid, n_bad, users)
    _print_summary(summary, options.as_json)
    ok = summary["recommendations"] == summary["events_valid"] and summary["dlq"] == n_bad
    return 0 if ok else 1


def _ensure_model(settings: Settings, say: Any) -> None:
    try:
        from training.bootstrap import ensure_demo_model
    except ImportError:
        return
    ensure_demo_model(settings, say)


def _summary(
    options: DemoOptions, stack: dict[str, Any], r: DemoResult, n_valid: int, n_bad: int,
    users: set[str],
) -> dict[str, Any]:
    elapsed = max(1e-9, r.last_received - r.first_sent)
    served = {m: n for m, n in r.models.items() if m != FALLBACK}
    model = max(served, key=lambda m: served[m]) if served else None
    fallback_share = r.models.get(FALLBACK, 0) / max(1, sum(r.models.values()))
    return {
        "events_sent": n_valid + n_bad,
        "events_valid": n_valid,
        "recommendations": len(r.answered),
        "dlq": r.dlq,
        "users": len(users),
        "p50_ms": round(percentile(r.latencies_ms, 50), 2),
        "p99_ms": round(percentile(r.latencies_ms, 99), 2),
        "throughput_eps": round(len(r.answered) / elapsed, 1),
        # time inside the worker, from the batch's start to the list (the rest is transport)
        "worker_p50_ms": round(percentile(r.worker_ms, 50), 2),
        "worker_p99_ms": round(percentile(r.worker_ms, 99), 2),
        "workers": options.workers,
        "models": r.models,
        "dlq_reasons": r.dlq_reasons,
        "stack": {
            "kafka": f"tansu 0.6.0 (embedded, in-memory) {stack.get('kafka')}"
            if stack.get("kafka") else f"external {stack.get('kafka_external')}",
            "redis": f"redis-server 6.2 (embedded) {stack.get('redis')}"
            if stack.get("redis") else f"external {stack.get('redis_external')}",
            "model": (f"{model} via Triton {stack['triton_grpc']}, "
                      f"{fallback_share:.0%} of the lists from the fallback"
                      if stack.get("triton_grpc") and model is not None
                      else "stream recommenders (trending + co-visitation), no model"),
        },
    }


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    print()
    print("streamrec demo summary")
    rows = [
        ("events sent", summary["events_sent"]),
        ("valid events", summary["events_valid"]),
        ("recommendations", summary["recommendations"]),
        ("dead letters", summary["dlq"]),
        ("users", summary["users"]),
        ("latency p50 / p99", f"{summary['p50_ms']} / {summary['p99_ms']} ms"),
        ("throughput", f"{summary['throughput_eps']} events/s"),
    ]
    rows += [(f"stack: {k}", v) for k, v in summary["stack"].items()]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
    print("  dead-letter reasons: " + ", ".join(
        f"{k} x{v}" for k, v in sorted(summary["dlq_reasons"].items())))
