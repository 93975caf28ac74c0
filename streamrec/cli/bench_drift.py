"""``streamrec bench drift``: from an abrupt drift to the first recommendation of a new model
version, in wall-clock seconds, on the embedded stack with the real trainer.

One run starts its own servers and services on 127.0.0.1, each stopped by its PID at the end:
the broker, Redis, Triton (CPU, poll mode) on a fresh model repository, one ``streamrec
worker``, the catalogue service (``streamrec catalog``) and the trainer (``streamrec trainer``,
with the settings of the ``trainer`` section, like any deployment). Then:

1. **setup** (not timed): a synthetic stream with one abrupt drift to new clusters
   (:func:`training.synthetic.abrupt_drift_stream`); a first model version trained on its
   first ``warm_events`` clicks (old clusters only) and published; the whole catalogue (new
   clusters included, with text) sent on ``items``, where the catalogue service adds the items
   that version does not know as text rows (a catalogue version, no retraining);
2. **pre-drift**: ``live_events`` clicks at ``rate`` events/s, answered by the worker;
3. **drift**: the clicks after the drift, at the same rate, until the first recommendation
   from a version the trainer promoted in answer to the drift (or ``timeout_s``).

The clock starts just before the first post-drift click is produced. The phases come from the
``model-events`` topic (each record's ``at``, the wall clock of the process that wrote it, on
this machine): the worker's ``drift`` alarm, the trainer's ``retrain`` (after it replayed the
clicks from Kafka) and ``promote`` (the version is published), then Triton reporting the version
READY (polled by this process) and the first recommendation on ``recommendations`` whose
``model`` is that version (received by this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from streamrec.core.config import Settings, UserError
from streamrec.core.embedded import pid_alive, start_kafka, start_redis, stop_pid

Progress = Callable[[str], None]
TEMPLATE_FILES = ("config.pbtxt", "configs", "model.py")
PHASES = ("drift_detected_s", "retrain_started_s", "published_s", "triton_ready_s",
          "first_recommendation_s")
SETUP_TIMEOUT_S = 180.0  # a catalogue version READY, the worker serving


@dataclass
class DriftBenchOptions:
    rate: float = 50.0  # clicks per second, before and after the drift
    warm_events: int = 10_000  # the first version is trained on these (not replayed)
    live_events: int = 3_000  # pre-drift clicks produced live
    users: int = 500
    items: int = 1_000
    seed: int = 0
    bootstrap_epochs: int = 10
    timeout_s: float = 600.0  # after the first post-drift click
    target_s: float = 300.0

    @property
    def drift_at(self) -> int:
        """Index of the first post-drift click in the synthetic stream."""
        return self.warm_events + self.live_events

    @property
    def stream_events(self) -> int:
        """Enough clicks to keep the rate up until the timeout."""
        return self.drift_at + int(self.rate * self.timeout_s) + 1

    def check(self) -> None:
        if self.rate <= 0 or self.timeout_s <= 0:
            raise UserError("--rate and --timeout must be positive")
        if self.warm_events < 100 or self.live_events < 1:
            raise UserError("--warm-events must be at least 100 and --live-events at least 1")


# --- what the run saw -----------------------------------------------------------------------
@dataclass
class DriftTimeline:
    """The facts a run collects (wall clock, seconds since the epoch) and the phases they give.

    ``learn_model_event`` takes every ``model-events`` record, ``learn_recommendation`` every
    recommendation; ``drift_sent_at`` is set just before the first post-drift click is sent.
    The *new version* is the first one promoted by a retrain that started after the first drift
    alarm raised at or after the drift (the trainer retrains one at a time, so each ``retrain``
    is closed by the next ``promote`` or ``reject``); ``retrain_started_s`` is the first of
    those retrains, rejected or not.

    >>> t = DriftTimeline("sasrec", drift_index=100, start_ts=0, step_ms=10)
    >>> t.drift_sent_at = 50.0
    >>> _ = t.learn_model_event({"type": "drift", "at": 52_100, "ts": 1_200}, 52.1)
    >>> _ = t.learn_model_event({"type": "retrain", "at": 53_000, "source": "trainer"}, 60.0)
    >>> _ = t.learn_model_event({"type": "promote", "at": 70_000, "model": "sasrec:3"}, 70.1)
    >>> _ = t.learn_recommendation({"event_id": "e9", "model": "sasrec:3"}, 75.5)
    >>> t.new_version, t.live, t.phases()["first_recommendation_s"], t.detection_delay_events()
    ('sasrec:3', True, 25.5, 20)
    """

    model_name: str
    drift_index: int  # index of the first post-drift click in the stream
    start_ts: int  # event time of the stream's first click
    step_ms: int  # event time between two clicks
    drift_sent_at: float | None = None
    model_events: list[dict[str, Any]] = field(default_factory=list)
    first_served: dict[str, tuple[float, str]] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    triton_ready_at: float | None = None

    def learn_model_event(self, event: dict[str, Any], received: float) -> DriftTimeline:
        self.model_events.append({**event, "received": received})
        return self

    def learn_recommendation(self, rec: dict[str, Any], received: float) -> DriftTimeline:
        event_id, model = str(rec.get("event_id")), str(rec.get("model"))
        if event_id in self.answered:  # consumers dedupe by event_id (at-least-once)
            return self
        self.answered.add(event_id)
        self.first_served.setdefault(model, (received, event_id))
        return self

    # --- derived facts ------------------------------------------------------------------
    @staticmethod
    def wall_s(event: dict[str, Any]) -> float:
        """When a model event happened (seconds since the epoch): its ``at``, the wall clock of
        the process that wrote it."""
        return float(event["at"]) / 1000

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.model_events if e.get("type") == kind]

    def _event_index(self, event: dict[str, Any]) -> int | None:
        ts = event.get("ts")
        return (ts - self.start_ts) // self.step_ms if isinstance(ts, int) else None

    @property
    def detection(self) -> dict[str, Any] | None:
        """The first drift alarm on a post-drift click."""
        return next((e for e in self._of("drift")
                     if (i := self._event_index(e)) is not None and i >= self.drift_index), None)

    def false_alarms(self) -> int:
        """Drift alarms on clicks before the drift."""
        return sum(1 for e in self._of("drift")
                   if (i := self._event_index(e)) is not None and i < self.drift_index)

    def detection_delay_events(self) -> int | None:
        detection = self.detection
        index = self._event_index(detection) if detection is not None else None
        return None if index is None else index - self.drift_index

    def retrains(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Each ``retrain`` with the decision that closed it (None while still running), in
        the order the trainer wrote them (``model-events`` has several partitions, so they may
        arrive in another)."""
        decisions = sorted((e for e in self.model_events
                            if e.get("type") in ("retrain", "promote", "reject")),
                           key=lambda e: (e["at"], e["type"] != "retrain"))
        out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for event in decisions:
            if event.get("type") == "retrain":
                out.append((event, None))
            elif event.get("type") in ("promote", "reject") and out and out[-1][1] is None:
                out[-1] = (out[-1][0], event)
        return out

    def drift_retrains(self) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """The retrains started after the drift was detected, with their decisions."""
        detection = self.detection
        if detection is None:
            return []
        detected = self.wall_s(detection)
        return [(r, d) for r, d in self.retrains() if self.wall_s(r) >= detected]

    @property
    def answer(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The first of those retrains whose candidate was promoted."""
        return next(((r, d) for r, d in self.drift_retrains()
                     if d is not None and d.get("type") == "promote"), None)

    @property
    def new_version(self) -> str | None:
        answer = self.answer
        return None if answer is None else str(answer[1]["model"])

    @property
    def live(self) -> bool:
        return self.new_version is not None and self.new_version in self.first_served

    def status(self) -> str:
        if self.live:
            return "live"
        if self.new_version is not None:
            return "promoted, not served yet"
        if self.detection is None:
            return "no drift detected"
        retrains = self.drift_retrains()
        if not retrains:
            return "no retrain started"
        if retrains[-1][1] is None:
            return "retraining"
        return f"{len(retrains)} candidate(s) rejected"

    def retrain_summaries(self) -> list[dict[str, Any]]:
        """Each retrain after the detection: when it started and ended (seconds from the first
        post-drift click), its window, the gate's verdict and where its time went."""
        t0 = self.drift_sent_at or 0.0
        out = []
        for retrain, decision in self.drift_retrains():
            summary = {k: v for k, v in {**retrain, **(decision or {})}.items()
                       if k in ("reason", "events", "window", "live_version", "version",
                                "gate", "timing")}
            summary["started_s"] = round(self.wall_s(retrain) - t0, 2)
            summary["decision"] = None if decision is None else decision["type"]
            summary["decided_s"] = (None if decision is None
                                    else round(self.wall_s(decision) - t0, 2))
            out.append(summary)
        return out

    def phases(self) -> dict[str, float | None]:
        """Seconds from the first post-drift click to each phase (None: not reached)."""
        t0 = self.drift_sent_at
        out: dict[str, float | None] = dict.fromkeys(PHASES)
        if t0 is None:
            return out

        def since(at_s: float | None) -> float | None:
            return None if at_s is None else round(at_s - t0, 2)

        detection, retrains, answer = self.detection, self.drift_retrains(), self.answer
        out["drift_detected_s"] = since(self.wall_s(detection)) if detection else None
        if retrains:
            out["retrain_started_s"] = since(self.wall_s(retrains[0][0]))
        if answer is not None:
            out["published_s"] = since(self.wall_s(answer[1]))
        out["triton_ready_s"] = since(self.triton_ready_at)
        if self.live:
            assert self.new_version is not None
            out["first_recommendation_s"] = since(self.first_served[self.new_version][0])
        return out


# --- the stack ------------------------------------------------------------------------------
@dataclass
class Services:
    """Every process this run started, by name, stopped in reverse order."""

    pids: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    triton: Any = None

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise UserError(f"{name} (pid {proc.pid}) exited with code {proc.returncode}; "
                                f"see {self.logs[name]}")

    def stop(self) -> None:
        from inference.triton_server import stop_triton

        for name in reversed(list(self.pids)):
            pid = self.pids[name]
            if name == "triton" and self.triton is not None:
                stop_triton(self.triton)
            elif pid_alive(pid):
                stop_pid(pid)


def model_repository(home: Path, source: Path, say: Progress) -> Path:
    """A fresh repository with the Triton templates of ``source`` and its exported text
    encoder (hard-linked when it is complete there, else exported here)."""
    from training.text_encoder import export_text_encoder, text_encoder_dir

    repo = home / "model_repository"
    for model in ("sasrec", "text_encoder"):
        target = repo / model
        target.mkdir(parents=True)
        for name in TEMPLATE_FILES:
            path = source / model / name
            if path.is_dir():
                shutil.copytree(path, target / name)
            elif path.exists():
                shutil.copy2(path, target / name)
    exported = text_encoder_dir(source)
    if (exported / "model.onnx").exists() and (exported / "tokenizer.json").exists():
        target = text_encoder_dir(repo)
        target.mkdir(parents=True)
        for path in exported.iterdir():
            if path.is_file():
                try:
                    os.link(path, target / path.name)
                except OSError:
                    shutil.copy2(path, target / path.name)
    else:
        say("exporting the text encoder (MiniLM -> ONNX) ...")
        export_text_encoder(repo)
    return repo


def bootstrap_version(stream: Any, warm: list[Any], texts: dict[str, str], repo: Path,
                      settings: Settings, epochs: int, text_cache: Path,
                      say: Progress) -> tuple[int, dict[str, Any]]:
    """Train the first version on the warm clicks (with item text) and publish it."""
    import numpy as np

    from training.data import Interactions, LeaveOneOut
    from training.export import publish_version
    from training.text_encoder import cached_item_vectors
    from training.train import TrainConfig, save_checkpoint, train_model

    data = Interactions([e.user_id for e in warm], [e.item_id for e in warm], [e.ts for e in warm])
    split = LeaveOneOut.from_interactions(data)
    vectors = cached_item_vectors([texts[i] for i in split.vocab.items], repo, text_cache)
    text_vectors = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    config = TrainConfig(epochs=epochs, patience=3, seed=stream.config.seed)
    say(f"training the first version on {len(warm):,} pre-drift clicks "
        f"({len(split.vocab):,} items, {epochs} epochs at most) ...")
    result = train_model(split, text_vectors, config, progress=False)
    checkpoint = settings.artifacts / "checkpoints" / "bench-drift-bootstrap.pt"
    save_checkpoint(result, checkpoint, {"data": {"dataset": "synthetic", "purpose":
                                                   "bench drift", "events": len(warm)}})
    version = publish_version(checkpoint, repo, settings.triton.model_name,
                              metrics={"valid": result.valid})
    return version, {"events": len(warm), "items": len(split.vocab),
                     "epochs": result.epochs_run, "seconds": round(result.seconds, 1),
                     "valid": {k: round(v, 4) for k, v in result.valid.items()
                               if isinstance(v, float)}}


def child_env(kafka: str, redis_host: str, triton_url: str, home: Path,
              repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "TRITON_URL")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "REDIS_URL": f"redis://{redis_host}/0",
        "TRITON_URL": triton_url,
        "STREAMREC_KAFKA__PROFILE": "embedded",
        "STREAMREC_HOME": str(home / "home"),
        "STREAMREC_ARTIFACTS": str(home / "artifacts"),
        "STREAMREC_TRITON__MODEL_REPOSITORY": str(repo),
        "STREAMREC_OBSERVABILITY__PORT": "0",
    })
    return env


def spawn(services: Services, name: str, argv: list[str], env: dict[str, str],
          log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamrec.cli", *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    services.procs[name], services.pids[name], services.logs[name] = proc, proc.pid, log


# --- the run --------------------------------------------------------------------------------
class DriftRun:
    """Drives one run against started services: catalogue, pre-drift and drifted clicks."""

    def __init__(self, settings: Settings, services: Services, options: DriftBenchOptions,
                 timeline: DriftTimeline, live: Iterator[Any], say: Progress) -> None:
        self.settings = settings
        self.services = services
        self.options = options
        self.timeline = timeline
        self.live = live
        self.say = say
        self.produced = 0
        self.post_drift = 0

    async def run(self, catalog: list[Any]) -> None:
        from streams.kafka_io import start_consumer, start_producer

        kafka = self.settings.kafka
        producer = await start_producer(self.settings)
        consumer = await start_consumer(self.settings, kafka.recommendations_topic,
                                        kafka.model_events_topic, from_beginning=True)
        reader = asyncio.create_task(self._read(consumer))
        try:
            await self._catalogue(producer, catalog)
            await self._clicks(producer)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await producer.stop()
            await consumer.stop()

    async def _read(self, consumer: Any) -> None:
        events_topic = self.settings.kafka.model_events_topic
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for messages in batches.values():
                for msg in messages:
                    try:
                        value = json.loads(msg.value)
                    except ValueError:
                        continue
                    if not isinstance(value, dict):
                        continue
                    if msg.topic == events_topic:
                        self.timeline.learn_model_event(value, now)
                        self._announce(value, now)
                    else:
                        self.timeline.learn_recommendation(value, now)

    def _announce(self, event: dict[str, Any], received: float) -> None:
        kind = event.get("type")
        if kind == "hit_rate":
            return
        t0 = self.timeline.drift_sent_at
        when = "before the drift" if t0 is None else f"t+{received - t0:6.1f} s"
        detail = {k: event[k] for k in ("model", "version", "reason", "events", "window",
                                        "request", "added") if k in event}
        if "gate" in event:
            detail["gate"] = event["gate"].get("reason")
        self.say(f"[{when}] model-events: {kind} {json.dumps(detail)}")

    async def _catalogue(self, producer: Any, catalog: list[Any]) -> None:
        """The catalogue on ``items``; wait for the catalogue version to be READY."""
        from inference.triton_server import model_ready

        topic, name = self.settings.kafka.items_topic, self.settings.triton.model_name
        for item in catalog:
            await producer.send(topic, key=item.item_id.encode(),
                                value=json.dumps(item.to_json()).encode())
        await producer.flush()
        self.say(f"catalogue: {len(catalog):,} items sent; waiting for the catalogue version ...")
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.services.check_alive()
            refresh = next((e for e in self.timeline.model_events
                            if e.get("type") == "catalog_refresh"), None)
            if refresh is not None and await asyncio.to_thread(
                    model_ready, self.services.triton.http_port, name, int(refresh["version"])):
                self.say(f"catalogue version {refresh['model']} READY (+{refresh['added']} "
                         "items as text rows)")
                return
            await asyncio.sleep(0.2)
        raise UserError(f"no catalogue version READY within {SETUP_TIMEOUT_S:.0f} s; see "
                        f"{self.services.logs['catalog']}")

    async def _clicks(self, producer: Any) -> None:
        """Paced clicks until the new version has served (or the timeout)."""
        opts, timeline = self.options, self.timeline
        topic = self.settings.kafka.clicks_topic
        start = time.perf_counter()
        deadline: float | None = None
        last_check = last_report = start
        while not timeline.live:
            now = time.perf_counter()
            due = int((now - start) * opts.rate) - self.produced
            for event in islice(self.live, max(0, due)):
                if self.produced == opts.live_events:
                    timeline.drift_sent_at = time.time()
                    deadline = time.monotonic() + opts.timeout_s
                    self.say(f"[t+   0.0 s] first post-drift click produced "
                             f"({opts.live_events:,} pre-drift clicks before it)")
                await producer.send(topic, key=event.user_id.encode(),
                                    value=json.dumps(event.to_json()).encode())
                self.produced += 1
                self.post_drift += self.produced > opts.live_events
            if deadline is not None and time.monotonic() > deadline:
                self.say(f"no recommendation from a new version within {opts.timeout_s:.0f} s "
                         f"({timeline.status()})")
                return
            if now - last_check > 0.5:
                last_check = now
                self.services.check_alive()
                await self._poll_triton()
            if now - last_report > 15:
                last_report = now
                self._report_progress()
            await asyncio.sleep(max(0.002, start + (self.produced + 1) / opts.rate
                                    - time.perf_counter()))
        await self._poll_triton()

    async def _poll_triton(self) -> None:
        from inference.triton_server import model_ready

        new = self.timeline.new_version
        if new is None or self.timeline.triton_ready_at is not None:
            return
        version = int(new.rsplit(":", 1)[1])
        if await asyncio.to_thread(model_ready, self.services.triton.http_port,
                                   self.settings.triton.model_name, version):
            self.timeline.triton_ready_at = time.time()

    def _report_progress(self) -> None:
        t0 = self.timeline.drift_sent_at
        when = "pre-drift" if t0 is None else f"t+{time.time() - t0:6.1f} s"
        served = ", ".join(sorted(self.timeline.first_served))
        self.say(f"[{when}] produced {self.produced:,} ({self.post_drift:,} post-drift), "
                 f"answered {len(self.timeline.answered):,}; versions served: {served}")


def run_drift_bench(options: DriftBenchOptions, say: Progress) -> dict[str, Any]:
    """Start everything, run, stop everything; the report."""
    from inference.triton_server import start_triton
    from streamrec.cli.demo import start_workers, wait_for_workers
    from streams.kafka_io import ensure_topics
    from training.pipeline import item_text
    from training.synthetic import abrupt_drift_stream

    options.check()
    base = Settings.from_env()
    home = Path(tempfile.mkdtemp(prefix="streamrec-bench-drift-"))
    logs = home / "logs"
    setup_started = time.perf_counter()
    stream = abrupt_drift_stream(events=options.stream_events, drift_at=options.drift_at,
                                 seed=options.seed, n_users=options.users,
                                 n_items=options.items)
    catalog = stream.catalog()
    texts = {i.item_id: item_text(i.title, i.text, i.categories) for i in catalog}
    items_file = home / "items.jsonl"
    items_file.write_text("".join(json.dumps(i.to_json()) + "\n" for i in catalog))
    clicks = stream.events()
    warm = list(islice(clicks, options.warm_events))
    repo = model_repository(home, base.triton.model_repository, say)
    settings = base.replace(home=home / "home", artifacts=home / "artifacts",
                            triton={"model_repository": repo}, observability={"port": 0})
    first, bootstrap = bootstrap_version(stream, warm, texts, repo, settings,
                                         options.bootstrap_epochs,
                                         base.artifacts / "text-vectors", say)
    say(f"published {settings.triton.model_name}:{first} ({bootstrap['epochs']} epochs in "
        f"{bootstrap['seconds']:.0f} s)")
    services = Services()
    timeline = DriftTimeline(settings.triton.model_name, options.drift_at,
                             stream.config.start_ts, stream.config.step_ms)
    run: DriftRun | None = None
    try:
        kafka = start_kafka(None, logs)
        services.pids["broker"] = kafka.pid
        redis = start_redis(None, logs)
        services.pids["redis"] = redis.pid
        triton = start_triton(repo, log_path=logs / "triton.log",
                              backend_dir=base.home / "triton-backends")
        services.pids["triton"], services.triton = triton.pid, triton
        env = child_env(kafka.address, redis.address, triton.grpc_address, home, repo)
        settings = settings.replace(kafka={"bootstrap_servers": kafka.address,
                                           "profile": "embedded"},
                                    redis={"url": env["REDIS_URL"]},
                                    triton={"url": triton.grpc_address})
        say(f"broker {kafka.address}, redis {redis.address}, triton {triton.grpc_address}")
        asyncio.run(ensure_topics(settings))
        spawn(services, "catalog", ["catalog"], env, logs / "catalog.log")
        spawn(services, "trainer", ["trainer", "--texts", str(items_file)], env,
              logs / "trainer.log")
        (worker,) = start_workers(settings, 1, env)
        services.procs["worker"], services.pids["worker"] = worker, worker.pid
        services.logs["worker"] = settings.home / "logs" / "worker-0.log"
        say("waiting for the worker to join its group ...")
        asyncio.run(wait_for_workers(settings, [worker], timeout_s=SETUP_TIMEOUT_S))
        run = DriftRun(settings, services, options, timeline, clicks, say)
        setup_s = time.perf_counter() - setup_started
        asyncio.run(run.run(catalog))
    finally:
        services.stop()
    return report(options, settings, timeline, run, bootstrap, setup_s, services, logs)


def report(options: DriftBenchOptions, settings: Settings, timeline: DriftTimeline,
           run: DriftRun | None, bootstrap: dict[str, Any], setup_s: float, services: Services,
           logs: Path) -> dict[str, Any]:
    from streamrec.cli.bench_e2e import machine

    phases = timeline.phases()
    live_s = phases["first_recommendation_s"]
    retrains = timeline.retrain_summaries()
    new = timeline.new_version
    first = timeline.first_served.get(new) if new else None
    return {
        "drift_to_live_s": live_s,
        "target_s": options.target_s,
        "met": live_s is not None and live_s <= options.target_s,
        "status": timeline.status(),
        "phases": phases,
        "new_version": new,
        "first_new_event_id": first[1] if first else None,
        "detection_delay_events": timeline.detection_delay_events(),
        "false_alarms": timeline.false_alarms(),
        # the retrain whose version went live (else the last one), and every drift retrain
        "retrain": next((r for r in retrains if r["decision"] == "promote"),
                        retrains[-1] if retrains else None),
        "retrains": retrains,
        "rate_eps": options.rate,
        "clicks": {"warm_trained": options.warm_events, "pre_drift_live": options.live_events,
                   "produced": run.produced if run else 0,
                   "post_drift": run.post_drift if run else 0,
                   "answered": len(timeline.answered)},
        "stream": {"users": options.users, "items": options.items, "seed": options.seed},
        "versions_served": sorted(timeline.first_served),
        "bootstrap": bootstrap,
        "setup_s": round(setup_s, 1),
        "trainer": settings.trainer.model_dump(),
        "decisions": [{k: v for k, v in e.items() if k not in ("gate",)}
                      for e in timeline.model_events if e.get("type") != "hit_rate"],
        "machine": machine(),
        "servers": dict(services.pids),
        "logs": str(logs),
        "options": asdict(options),
    }


def format_table(report: dict[str, Any]) -> str:
    phases = report["phases"]
    labels = {"drift_detected_s": "drift detected (worker's alarm)",
              "retrain_started_s": "retrain started (trainer, clicks replayed)",
              "published_s": "candidate published (gate passed)",
              "triton_ready_s": "new version READY in Triton (polled)",
              "first_recommendation_s": "first recommendation from it"}
    lines = [f"streamrec bench drift: {report['rate_eps']:.0f} clicks/s, "
             f"{report['machine']['cpus']} CPUs, load {report['machine']['load_avg_1m']}",
             f"{'phase':<46} {'t (s)':>8} {'step (s)':>9}"]
    previous = 0.0
    for key in PHASES:
        value = phases[key]
        step = "" if value is None else f"{value - previous:9.1f}"
        lines.append(f"{labels[key]:<46} {'-' if value is None else f'{value:8.1f}':>8} "
                     f"{step:>9}")
        previous = value if value is not None else previous
    total = report["drift_to_live_s"]
    verdict = "met" if report["met"] else "NOT met"
    lines.append(f"drift -> new version live: "
                 f"{'-' if total is None else f'{total:.1f} s'} (target <= "
                 f"{report['target_s']:.0f} s: {verdict}; {report['status']})")
    lines.append(f"detection delay {report['detection_delay_events']} clicks, false alarms "
                 f"{report['false_alarms']}; new version {report['new_version']}")
    for r in report.get("retrains", []):
        gate = (r.get("gate") or {}).get("reason", "")
        decided = "" if r["decided_s"] is None else f" at t+{r['decided_s']:.1f} s, {gate}"
        lines.append(f"retrain at t+{r['started_s']:.1f} s on {r.get('events')} clicks "
                     f"({r.get('window')} window): {r['decision'] or 'running'}{decided}")
        if r.get("timing"):
            lines.append(f"  inside it (s): {json.dumps(r['timing'])} (challenge: load, item "
                         "text, fine-tune, gate; publish: ONNX export)")
    lines.append("trainer: " + ", ".join(f"{k} {v}" for k, v in report["trainer"].items()))
    return "\n".join(lines)
