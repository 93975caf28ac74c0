"""``streamrec bench e2e``: the worker against a plain Faust agent, end to end, in one run.

One run starts its own broker, Redis and (for ``worker``) Triton on 127.0.0.1, then drives each
variant in turn against its own fresh topics, app id and Redis database:

- ``faust-baseline``: a plain Faust agent (``streams.baseline``: one table write and one send per
  event), the anchor;
- ``worker-no-model``: ``streamrec worker`` with the stream recommenders only;
- ``worker``: the full worker, the model through Triton (the embedded CPU Triton serving the demo
  model, or ``--triton-url``).

The load generator (this process) sends MovieLens-100K clicks at a paced rate and reads the
answers; latency is from just before an event is produced to the receipt of its answer (wall
clock, one machine), summarised by :func:`streamrec.core.metrics.percentile`. CPU per event is
marginal: each process's CPU time (psutil, children included) between two instants after the
warm-up, divided by the events answered between them. ``--max`` searches the highest offered
rate whose p99 stays within ``--p99-ms`` and whose answers keep up with the offered rate.
A variant may name the user-state table's store (``worker:rocksdb``, ``worker:memory``;
without one, the profile's: memory with the embedded broker), and ``--workers N`` runs the
worker variants as N processes in one consumer group sharing the clicks topic's partitions.
Every server this command starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from streamrec.core.config import Settings, UserError
from streamrec.core.embedded import pid_alive, start_kafka, start_redis, stop_pid
from streamrec.core.metrics import percentile

VARIANTS = ("faust-baseline", "worker-no-model", "worker")
STORES = ("memory", "rocksdb")  # a variant's user-state store: ``worker:rocksdb``
PROCESSES = ("worker", "broker", "redis", "triton", "loadgen")
KEEP_UP = 0.95  # a rate is sustained when answers keep this share of the offered rate
READY_TIMEOUT_S = 120.0
Progress = Callable[[str], None]


@dataclass
class BenchOptions:
    variants: tuple[str, ...] = VARIANTS
    rate: float = 500.0
    duration_s: float = 10.0
    warmup_s: float = 3.0
    search: bool = False  # --max
    p99_ms: float = 50.0
    start_rate: float = 200.0
    max_rate: float = 20_000.0
    refine_steps: int = 3
    triton_url: str | None = None
    workers: int = 1  # processes per worker variant, one consumer group


def parse_variant(spec: str) -> tuple[str, str | None]:
    """``(variant, store)`` of ``worker`` or ``worker:rocksdb``.

    >>> parse_variant("worker-no-model:rocksdb")
    ('worker-no-model', 'rocksdb')
    >>> parse_variant("faust-baseline")
    ('faust-baseline', None)
    """
    name, _, store = spec.partition(":")
    if name not in VARIANTS or (store and store not in STORES):
        raise UserError(f"unknown variant {spec!r}: one of {', '.join(VARIANTS)}, optionally "
                        f"with :{' or :'.join(STORES)} (the user-state store)")
    return name, store or None


def state_bytes_per_user(interactions: int = 50) -> int:
    """Bytes of one user's table value after ``interactions`` MovieLens clicks, as the
    ``user-state`` table's serializer (Faust's json codec) writes it to RocksDB and the
    changelog (the first user with that many clicks, with the catalogue's categories)."""
    from faust.serializers import codecs

    from streamrec.cli.producer import movielens_events, movielens_items
    from streamrec.core.events import ClickEvent, parse_click
    from streams.components import state_config
    from streams.state import UserState

    categories = {i["item_id"]: i["categories"] for i in movielens_items()}
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in movielens_events():
        clicks = by_user.setdefault(event["user_id"], [])
        clicks.append(event)
        if len(clicks) == interactions:
            break
    user, clicks = next((u, c) for u, c in by_user.items() if len(c) == interactions)
    state, config = UserState(user), state_config(Settings())
    for raw in clicks:
        event = parse_click(json.dumps(raw).encode())
        assert isinstance(event, ClickEvent), event
        state.update(event, categories.get(raw["item_id"], ()), config)
    return len(codecs.dumps("json", state.to_dict()))


@dataclass
class Step:
    """One paced load at ``offered_eps`` against one variant, measured after its warm-up."""

    offered_eps: float
    in_eps: float
    out_eps: float
    answered: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    lag_events: int
    unanswered: int
    fallback_share: float
    cpu_us_per_event: dict[str, float]
    peak_rss_mb: dict[str, float]
    # RSS over the measured window: median of its first and last tenth, and their change
    rss_mb_start: dict[str, float] = field(default_factory=dict)
    rss_mb_end: dict[str, float] = field(default_factory=dict)
    rss_growth_pct: dict[str, float] = field(default_factory=dict)
    # [seconds into the measured window, {process: RSS MB}] every ~0.5 s (the soak's plot)
    rss_series: list[list[Any]] = field(default_factory=list)

    def sustained(self, p99_ms: float) -> bool:
        return (self.p99_ms <= p99_ms and self.out_eps >= KEEP_UP * self.offered_eps
                and self.unanswered == 0)

    def as_dict(self, series: bool = False) -> dict[str, Any]:
        """Plain values; the RSS series only when asked (the soak's plot needs it)."""
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in self.__dict__.items()
                if series or k != "rss_series"}


def rss_drift(series: list[list[Any]]) -> tuple[dict[str, float], dict[str, float],
                                                 dict[str, float]]:
    """Per process: median RSS (MB) over the first and the last tenth of ``series`` and the
    change between them in percent (medians: one sample at a GC peak does not decide).

    >>> start, end, growth = rss_drift([[t, {"w": 100.0 + (t >= 9)}] for t in range(10)])
    >>> start["w"], end["w"], growth["w"]
    (100.0, 101.0, 1.0)
    """
    if not series:
        return {}, {}, {}
    tenth = max(1, len(series) // 10)
    names = series[0][1].keys()
    start = {n: float(np.median([s[1][n] for s in series[:tenth]])) for n in names}
    end = {n: float(np.median([s[1][n] for s in series[-tenth:]])) for n in names}
    growth = {n: (end[n] - start[n]) * 100 / start[n] if start[n] else 0.0 for n in names}
    return start, end, growth


# --- processes and their CPU --------------------------------------------------------------
class ProcessMeter:
    """CPU seconds and peak RSS of named processes, summed per name (Triton with its children,
    the python-backend stubs that run the model; ``--workers N``: the N worker processes)."""

    def __init__(self, pids: dict[str, int | list[int]]) -> None:
        self.processes = {name: [psutil.Process(pid) for pid in
                                 (pid_or_pids if isinstance(pid_or_pids, list) else [pid_or_pids])]
                          for name, pid_or_pids in pids.items()}
        self.peak_rss: dict[str, int] = dict.fromkeys(pids, 0)

    def _family(self, name: str) -> list[psutil.Process]:
        roots = self.processes[name]
        if name != "triton":  # the load generator's children are the servers themselves
            return roots
        try:
            return [*roots, *roots[0].children(recursive=True)]
        except psutil.Error:
            return roots

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for name in self.processes:
            total = 0.0
            for proc in self._family(name):
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            out[name] = total
        return out

    def sample_rss(self) -> dict[str, float]:
        """Current RSS (MB) per name; also keeps the peak."""
        now = {}
        for name in self.processes:
            rss = 0
            for proc in self._family(name):
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_rss[name] = max(self.peak_rss[name], rss)
            now[name] = rss / 2**20
        return now


# --- the load generator -------------------------------------------------------------------
class ClickSource:
    """MovieLens-100K clicks in time order, cycled with shifted timestamps, unique event ids."""

    def __init__(self, tag: str) -> None:
        from streamrec.cli.producer import movielens_events

        self.events = movielens_events()
        self.span_ms = self.events[-1]["ts"] - self.events[0]["ts"] + 1
        self.tag = tag
        self.n = 0

    def next(self) -> tuple[str, bytes, bytes]:
        base = self.events[self.n % len(self.events)]
        cycle = self.n // len(self.events)
        event_id = f"{self.tag}-{self.n}"
        self.n += 1
        event = {**base, "event_id": event_id, "ts": base["ts"] + cycle * self.span_ms}
        return event_id, base["user_id"].encode(), json.dumps(event).encode()


class VariantDriver:
    """Produces paced clicks to one variant's topic and times their answers."""

    def __init__(self, settings: Settings, tag: str) -> None:
        self.settings = settings
        self.source = ClickSource(tag)
        self.sent_at: dict[str, float] = {}
        self.received_at: dict[str, float] = {}
        self.fallbacks: set[str] = set()
        self.producer: Any = None
        self.consumer: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from streams.kafka_io import start_consumer, start_producer

        self.producer = await start_producer(self.settings)
        self.consumer = await start_consumer(
            self.settings, self.settings.kafka.recommendations_topic, from_beginning=True)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.producer is not None:
            await self.producer.stop()
        if self.consumer is not None:
            await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.perf_counter()
            for messages in batches.values():
                for msg in messages:
                    answer = json.loads(msg.value)
                    event_id = answer.get("event_id")
                    if event_id in self.sent_at and event_id not in self.received_at:
                        self.received_at[event_id] = now  # consumers dedupe by event_id
                        if answer.get("model") == "fallback":
                            self.fallbacks.add(event_id)

    async def send_one(self) -> str:
        event_id, key, value = self.source.next()
        self.sent_at[event_id] = time.perf_counter()
        await self.producer.send(self.settings.kafka.clicks_topic, key=key, value=value)
        return event_id

    async def wait_answered(self, ids: list[str], timeout_s: float) -> bool:
        """Wait until every id is answered; each poll checks only those still missing (a
        full scan of a soak's 60,000 ids every poll starved the reader on the same loop)."""
        deadline = time.monotonic() + timeout_s
        missing = [i for i in ids if i not in self.received_at]
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            missing = [i for i in missing if i not in self.received_at]
        return not missing

    async def until_ready(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        """Send a probe every half second until one is answered (the variant is serving)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UserError(f"variant pid {proc.pid} exited ({proc.returncode}); see {log}")
            probe = await self.send_one()
            await self.producer.flush()
            if await self.wait_answered([probe], 0.5):
                return
        raise UserError(f"variant pid {proc.pid} not serving within {READY_TIMEOUT_S:.0f} s; "
                        f"see {log}")

    async def run(self, rate: float, duration_s: float, warmup_s: float,
                  meter: ProcessMeter, proc_name: str = "worker") -> Step:
        """Offer ``rate`` events/s for ``warmup_s + duration_s``; measure the last part."""
        tick = 0.002
        sent: list[str] = []
        start = time.perf_counter()
        measure_from = start + warmup_s
        end = measure_from + duration_s
        cpu_a: dict[str, float] | None = None
        answered_a = 0
        window_ids: list[str] = []
        n = 0
        last_rss = 0.0
        rss_series: list[list[Any]] = []
        while (now := time.perf_counter()) < end:
            if cpu_a is None and now >= measure_from:
                cpu_a, answered_a, t_a = meter.cpu_seconds(), len(self.received_at), now
            due = int((now - start) * rate) - n
            for _ in range(due):
                event_id = await self.send_one()
                n += 1
                sent.append(event_id)
                if cpu_a is not None:
                    window_ids.append(event_id)
            if now - last_rss > 0.5:
                rss = meter.sample_rss()
                if cpu_a is not None:
                    rss_series.append([round(now - measure_from, 2),
                                       {k: round(v, 2) for k, v in rss.items()}])
                last_rss = now
            # sleep until the next event is due (at least ``tick``: no busy loop at low rates)
            await asyncio.sleep(max(tick, start + (n + 1) / rate - time.perf_counter()))
        t_b = time.perf_counter()
        cpu_b, answered_b = meter.cpu_seconds(), len(self.received_at)
        lag = sum(1 for i in sent if i not in self.received_at)
        assert cpu_a is not None
        # the answers still on their way (a backlog counts in latency, not as lost)
        await self.wait_answered(window_ids, timeout_s=max(5.0, 2 * duration_s))
        meter.sample_rss()
        handled = max(1, answered_b - answered_a)
        latencies = [(self.received_at[i] - self.sent_at[i]) * 1000
                     for i in window_ids if i in self.received_at]
        answered = [i for i in window_ids if i in self.received_at]
        elapsed = t_b - t_a
        rss_start, rss_end, rss_growth = rss_drift(rss_series)
        return Step(
            offered_eps=rate,
            in_eps=len(window_ids) / elapsed,
            out_eps=(answered_b - answered_a) / elapsed,
            answered=len(answered),
            p50_ms=percentile(latencies, 50),
            p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99),
            max_ms=max(latencies, default=float("nan")),
            lag_events=lag,
            unanswered=len(window_ids) - len(answered),
            fallback_share=sum(1 for i in answered if i in self.fallbacks) / max(1, len(answered)),
            cpu_us_per_event={name: (cpu_b[name] - cpu_a[name]) * 1e6 / handled
                              for name in cpu_a},
            peak_rss_mb={name: rss / 2**20 for name, rss in meter.peak_rss.items()},
            rss_mb_start=rss_start,
            rss_mb_end=rss_end,
            rss_growth_pct=rss_growth,
            rss_series=rss_series,
        )

    async def drain(self, timeout_s: float = 15.0) -> None:
        await self.wait_answered(list(self.sent_at), timeout_s)


# --- variants -----------------------------------------------------------------------------
@dataclass
class Stack:
    kafka: str
    redis_host: str
    pids: dict[str, int] = field(default_factory=dict)
    triton_url: str | None = None


def variant_env(stack: Stack, variant: str, db: int, home: Path,
                store: str | None = None) -> tuple[dict[str, str], str]:
    tag = f"{variant}-{store or 'default'}-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "TRITON_URL")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka,
        "REDIS_URL": f"redis://{stack.redis_host}/{db}",
        "STREAMREC_KAFKA__PROFILE": "embedded",
        "STREAMREC_HOME": str(home / tag),
        "STREAMREC_WORKER__APP_ID": f"bench-{tag}",
        "STREAMREC_KAFKA__CLICKS_TOPIC": f"clicks-{tag}",
        "STREAMREC_KAFKA__DLQ_TOPIC": f"clicks-{tag}.dlq",
        "STREAMREC_KAFKA__ITEMS_TOPIC": f"items-{tag}",
        "STREAMREC_KAFKA__RECOMMENDATIONS_TOPIC": f"recommendations-{tag}",
        "STREAMREC_KAFKA__MODEL_EVENTS_TOPIC": f"model-events-{tag}",
        "STREAMREC_KAFKA__IMPRESSIONS_TOPIC": f"impressions-{tag}",
        # several workers: /metrics on any free port (each publishes its own in workers:ready)
        "STREAMREC_OBSERVABILITY__PORT": "0",
    })
    if store:
        env["STREAMREC_WORKER__STORE"] = store
    if variant == "worker" and stack.triton_url:
        env["TRITON_URL"] = stack.triton_url
    return env, tag


def start_variant(variant: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    module = ["streams.baseline"] if variant == "faust-baseline" else [
        "streamrec.cli", "worker", "--loglevel", "warning"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", *module], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)


async def bench_variant(
    spec: str, stack: Stack, db: int, home: Path, options: BenchOptions, say: Progress
) -> dict[str, Any]:
    from streams.kafka_io import ensure_topics

    variant, store = parse_variant(spec)
    env, tag = variant_env(stack, variant, db, home, store)
    n_procs = 1 if variant == "faust-baseline" else options.workers
    settings = Settings.from_env(kafka={"bootstrap_servers": stack.kafka, "profile": "embedded",
                                        "clicks_topic": env["STREAMREC_KAFKA__CLICKS_TOPIC"],
                                        "recommendations_topic":
                                            env["STREAMREC_KAFKA__RECOMMENDATIONS_TOPIC"],
                                        "items_topic": env["STREAMREC_KAFKA__ITEMS_TOPIC"]})
    await ensure_topics(settings, [settings.kafka.clicks_topic,
                                   settings.kafka.recommendations_topic,
                                   settings.kafka.items_topic])
    if variant != "faust-baseline":
        await _send_catalogue(settings)
    log = home / "logs" / f"{tag}.log"
    procs = [start_variant(variant, {**env, "STREAMREC_HOME": f"{env['STREAMREC_HOME']}/w{i}"},
                           log.with_suffix(f".{i}.log"))
             for i in range(n_procs)]
    proc = procs[0]
    driver = VariantDriver(settings, tag)
    variant = spec  # the report's name: with its store when one was named
    try:
        await driver.start()
        say(f"[{variant}] waiting for {n_procs} process(es) to serve ...")
        if n_procs > 1:
            await wait_all_ready(env["REDIS_URL"], procs, log)
        await driver.until_ready(proc, log)
        pids = {"worker": [p.pid for p in procs], **stack.pids, "loadgen": os.getpid()}
        meter = ProcessMeter({k: v for k, v in pids.items() if k in PROCESSES})
        steps: list[Step] = []

        async def step(rate: float) -> Step:
            await driver.drain()
            result = await driver.run(rate, options.duration_s, options.warmup_s, meter)
            steps.append(result)
            verdict = "ok" if result.sustained(options.p99_ms) else "over"
            say(f"[{variant}] {rate:7.0f} ev/s offered: out {result.out_eps:7.0f} ev/s, "
                f"p50 {result.p50_ms:6.1f} ms, p99 {result.p99_ms:7.1f} ms, "
                f"fallback {result.fallback_share:.0%}, worker "
                f"{result.cpu_us_per_event['worker']:6.0f} us/ev  [{verdict}]")
            return result

        if options.search:
            best = await search_max(step, options)
        else:
            best = await step(options.rate)
    finally:
        await driver.stop()
        for p in procs:
            if pid_alive(p.pid):
                stop_pid(p.pid)
    out: dict[str, Any] = {"pid": proc.pid, "workers": n_procs, "store": store or "default"}
    out.update(best.as_dict(series=not options.search) if best is not None else {})
    if options.search:
        out["max_eps"] = round(best.offered_eps, 1) if best is not None else 0.0
    out["steps"] = [s.as_dict() for s in steps]
    return out


async def wait_all_ready(redis_url: str, procs: list[subprocess.Popen[bytes]],
                         log: Path) -> None:
    """Until every worker process has published itself in ``workers:ready`` (it was assigned
    its partitions and built its runtime)."""
    import redis

    from streams.runtime import WORKERS_READY_KEY, worker_identity

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise UserError(f"worker pid {p.pid} exited ({p.returncode}); see {log}")
            if all(client.hexists(WORKERS_READY_KEY, worker_identity(p.pid)) for p in procs):
                return
            await asyncio.sleep(0.25)
    finally:
        client.close()
    raise UserError(f"{len(procs)} workers not ready within {READY_TIMEOUT_S:.0f} s; see {log}")


async def search_max(step: Callable[[float], Any], options: BenchOptions) -> Step | None:
    """Double the rate until it is not sustained, then bisect ``refine_steps`` times."""
    best: Step | None = None
    rate, failed = options.start_rate, None
    while rate <= options.max_rate:
        result = await step(rate)
        if not result.sustained(options.p99_ms):
            failed = rate
            break
        best, rate = result, rate * 2
    low = best.offered_eps if best is not None else 0.0
    high = failed if failed is not None else options.max_rate
    for _ in range(options.refine_steps if failed is not None else 0):
        mid = (low + high) / 2
        if mid < 10 or high - low < 0.05 * high:
            break
        result = await step(mid)
        if result.sustained(options.p99_ms):
            best, low = result, mid
        else:
            high = mid
    return best


async def _send_catalogue(settings: Settings) -> None:
    from streamrec.cli.producer import movielens_items, send_all

    items = movielens_items()
    await send_all(settings, settings.kafka.items_topic,
                   ((i["item_id"].encode(), json.dumps(i).encode()) for i in items),
                   total=len(items), progress=False)


# --- the run ------------------------------------------------------------------------------
def start_stack(home: Path, options: BenchOptions, say: Progress) -> Stack:
    logs = home / "logs"
    kafka = start_kafka(None, logs)
    stack = Stack(kafka=kafka.address, redis_host="", pids={"broker": kafka.pid})
    try:
        redis = start_redis(None, logs)
        stack.redis_host, stack.pids["redis"] = redis.address, redis.pid
        if "worker" in {parse_variant(v)[0] for v in options.variants}:
            if options.triton_url:
                stack.triton_url = options.triton_url
            else:
                stack.triton_url, stack.pids["triton"] = _start_triton(home, say)
    except BaseException:
        stop_stack(stack)
        raise
    say(f"broker {stack.kafka}, redis {stack.redis_host}, triton {stack.triton_url or '-'}")
    return stack


def _start_triton(home: Path, say: Progress) -> tuple[str, int]:
    from inference.triton_server import start_triton
    from training.bootstrap import ensure_demo_model, has_version

    settings = Settings.from_env()
    repo = settings.triton.model_repository
    # the sequence model's own versions: the text encoder alone would leave `worker` on the
    # fallback
    ensure_demo_model(settings, say)
    if not has_version(settings):
        raise UserError(f"no {settings.triton.model_name} version in {repo} for the `worker` "
                        "variant; train one or leave it out with --variants")
    server = start_triton(repo, log_path=home / "logs" / "triton.log",
                          backend_dir=settings.home / "triton-backends")
    return server.grpc_address, server.pid


def stop_stack(stack: Stack) -> None:
    for pid in stack.pids.values():
        if pid_alive(pid):
            stop_pid(pid)


def machine() -> dict[str, Any]:
    return {"cpus": psutil.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0]}


def run_bench(options: BenchOptions, say: Progress) -> dict[str, Any]:
    for spec in options.variants:
        parse_variant(spec)
    if options.workers < 1:
        raise UserError("--workers must be at least 1")
    home = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))
    report: dict[str, Any] = {
        "mode": "max" if options.search else "rate",
        "rate": None if options.search else options.rate,
        "duration_s": options.duration_s, "warmup_s": options.warmup_s,
        "p99_target_ms": options.p99_ms, "machine": machine(), "logs": str(home / "logs"),
        "workers": options.workers, "state_bytes_per_user_50": state_bytes_per_user(50),
        "variants": {},
    }
    stack = start_stack(home, options, say)
    try:
        for db, variant in enumerate(options.variants, start=1):
            report["variants"][variant] = asyncio.run(
                bench_variant(variant, stack, db, home, options, say))
    finally:
        stop_stack(stack)
    report["servers"] = dict(stack.pids)
    report["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return report


def format_table(report: dict[str, Any]) -> str:
    header = (f"{'variant':<24} {'offered':>8} {'in/s':>7} {'out/s':>7} {'p50':>7} {'p95':>7} "
              f"{'p99':>7} {'max':>7} {'lag':>5} {'fallbk':>6} | CPU us/event: "
              + " ".join(f"{p:>7}" for p in PROCESSES) + " | peak RSS MB worker")
    lines = [f"streamrec bench e2e ({report['mode']}"
             + (f", {report['rate']:.0f} ev/s" if report["rate"] else
                f", p99 <= {report['p99_target_ms']:.0f} ms")
             + f", {report['duration_s']:.0f} s measured after {report['warmup_s']:.0f} s warm-up;"
             f" {report['machine']['cpus']} CPUs, load {report['machine']['load_avg_1m']})",
             header]
    for name, v in report["variants"].items():
        if "offered_eps" not in v:
            lines.append(f"{name:<24} no sustained rate")
            continue
        cpu = v["cpu_us_per_event"]
        lines.append(
            f"{name:<24} {v['offered_eps']:>8.0f} {v['in_eps']:>7.0f} {v['out_eps']:>7.0f} "
            f"{v['p50_ms']:>7.1f} {v['p95_ms']:>7.1f} {v['p99_ms']:>7.1f} {v['max_ms']:>7.1f} "
            f"{v['lag_events']:>5} {v['fallback_share']:>6.0%} |               "
            + " ".join(f"{cpu.get(p, float('nan')):>7.0f}" for p in PROCESSES)
            + f" | {v['peak_rss_mb'].get('worker', 0):.0f}"
            + (f" ({v['rss_growth_pct']['worker']:+.1f}% over the window)"
               if v.get("rss_growth_pct", {}).get("worker") is not None else ""))
    lines.append("latency in ms, produce -> receipt; CPU is marginal (psutil) per answered "
                 "event (worker: all its processes); lag = events unanswered when the load "
                 "stopped")
    lines.append(f"worker processes per worker variant: {report.get('workers', 1)}; user-state "
                 f"value at 50 interactions: {report.get('state_bytes_per_user_50', '?')} bytes")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """``--max``: latency against offered rate per variant; ``--rate``: RSS over time per
    process and variant (the soak)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report["mode"] == "rate":
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, v in report["variants"].items():
            series = v.get("rss_series", [])
            for proc in PROCESSES:
                if series and proc in series[0][1]:
                    ax.plot([s[0] for s in series], [s[1][proc] for s in series],
                            label=f"{name}: {proc}")
        ax.set_xlabel("seconds into the measured window")
        ax.set_ylabel("RSS (MB)")
        ax.legend(fontsize=7)
        ax.set_title(f"streamrec bench e2e: RSS at {report['rate']:.0f} events/s")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, v in report["variants"].items():
        steps = sorted(v.get("steps", []), key=lambda s: s["offered_eps"])
        rates = [s["offered_eps"] for s in steps]
        line, = ax.plot(rates, [s["p99_ms"] for s in steps], marker="o", label=f"{name} p99")
        ax.plot(rates, [s["p50_ms"] for s in steps], marker=".", linestyle="--",
                color=line.get_color(), label=f"{name} p50")
    ax.axhline(report["p99_target_ms"], color="grey", linewidth=0.8)
    ax.set_xlabel("offered rate (events/s)")
    ax.set_ylabel("latency produce -> receipt (ms)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("streamrec bench e2e")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
