"""What a worker tells its operators: Prometheus metrics, readiness facts and JSON log lines.

- :class:`WorkerMetrics` holds the worker's metrics in its own registry. Only what cannot be
  read later is counted on the hot path, once per batch where possible: records in, dead
  letters by reason category, and the end-to-end latency histogram. Everything the worker
  already counts (answers, fallbacks, breaker, model version, drift, Redis failures) is read
  from the runtime when Prometheus scrapes (:class:`RuntimeCollector`), at no cost per event.
- :class:`ConsumerCollector` reads the consumer's positions at scrape time: the end offset
  (highwater) of each assigned ``clicks``/``items`` partition, the committed offset, and their
  difference, the consumer lag.
- :func:`reason_category` maps a dead letter's free-text reason to one of a fixed set of
  categories, so the ``reason`` label never grows with the input.
- :class:`JsonLogFormatter`: one JSON object per log line (``observability.log_format=json``).

End-to-end latency is measured from the Kafka record's timestamp (the producer's ``CreateTime``
on a topic with the default ``message.timestamp.type``; the broker's append time on a topic set
to ``LogAppendTime``) to the moment the worker's answers to the batch (recommendations and dead
letters) are acknowledged by the broker. It is wall clock against wall clock: the click's own
``ts`` is event time (a replay of last year's log would read as a year of latency) and is not
used. The producer's and the worker's clocks must agree (NTP) for the figure to mean anything.

>>> reason_category("malformed JSON: Expecting value at char 0")
'malformed_json'
>>> reason_category("field 'ts' is 3600 s in the future")
'future_timestamp'
>>> reason_category("anything else a handler said")
'other'
"""

from __future__ import annotations

import json
import logging
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

PREFIX = "streamrec"

# seconds; a worker on loopback answers in milliseconds, a backlog in seconds to minutes
LATENCY_BUCKETS = (
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)

# (category, pattern on the reason's start); the first match wins, ``other`` when none does
_REASON_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (category, re.compile(pattern))
    for category, pattern in (
        ("empty", r"empty record"),
        ("too_large", r"payload of \d+ bytes exceeds|record .*too (large|big)"),
        ("not_utf8", r"payload is not UTF-8"),
        ("malformed_json", r"malformed JSON|invalid JSON"),
        ("not_an_object", r"JSON value must be an object"),
        ("missing_field", r"missing field"),
        ("unknown_type", r"unknown event type"),
        ("future_timestamp", r"field 'ts' is .* in the future"),
        ("invalid_timestamp", r"field 'ts'"),
        ("invalid_id", r"field '(event_id|user_id|item_id)'"),
        ("invalid_field", r"field '"),
        ("handler_error", r"(handler|handling|processing|internal) (error|failed)|unexpected"),
    )
)
REASON_CATEGORIES = tuple(category for category, _ in _REASON_PATTERNS) + ("other",)

BREAKER_STATES = ("closed", "open", "half_open")


def reason_category(reason: str) -> str:
    """The bounded category of a dead letter's reason (one of :data:`REASON_CATEGORIES`)."""
    head = reason[:200]
    for category, pattern in _REASON_PATTERNS:
        if pattern.match(head) or (category == "handler_error" and pattern.search(head)):
            return category
    return "other"


class WorkerMetrics:
    """The worker's metrics: a registry of its own, updated per batch by the runtime.

    >>> metrics = WorkerMetrics()
    >>> metrics.record_dead_letter("missing field 'ts'")
    >>> metrics.value("streamrec_dead_letters_total", reason="missing_field")
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(namespace=PREFIX, registry=self.registry)
        self.events_in = Counter(
            f"{PREFIX}_events_in", "Records the worker consumed, by topic", ["topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters", "Records sent to the dead-letter topic, by reason category",
            ["reason"], registry=self.registry,
        )
        self.latency = BatchHistogram(
            f"{PREFIX}_end_to_end_latency_seconds",
            "From a click's Kafka record timestamp to its answer being acknowledged by the broker",
            LATENCY_BUCKETS,
        )
        self.registry.register(self.latency)
        # pre-bound children: a label lookup per batch, not per event
        self._in: dict[str, Any] = {}
        self._dlq = {c: self.dead_letters.labels(reason=c) for c in REASON_CATEGORIES}

    def record_batch(
        self, topic: str, batch: Iterable[Any], *, now: float | None = None,
        latency: bool = True,
    ) -> None:
        """Count a handled batch of Faust events and observe each one's end-to-end latency
        (``event.message.timestamp``, seconds, when the record carries one)."""
        events = batch if isinstance(batch, list) else list(batch)
        child = self._in.get(topic)
        if child is None:
            child = self._in[topic] = self.events_in.labels(topic=topic)
        child.inc(len(events))
        if not latency:
            return
        now = time.time() if now is None else now
        self.latency.update_many(
            now - t for t in (getattr(e.message, "timestamp", None) for e in events) if t
        )

    def record_dead_letter(self, reason: str) -> None:
        self._dlq[reason_category(reason)].inc()

    def watch(self, collector: Any) -> None:
        """Also expose what ``collector.collect()`` yields at each scrape."""
        self.registry.register(collector)

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (tests, ``streamrec`` commands)."""
        return self.registry.get_sample_value(name, labels)


class BatchHistogram:
    """A Prometheus histogram kept as plain bucket counts, updated a batch at a time on the
    worker's loop (no lock per observation) and rendered at scrape time.

    >>> h = BatchHistogram("x_seconds", "doc", (0.1, 1.0))
    >>> h.update_many([0.05, 0.1, 0.5, 7.0])
    >>> [s.value for s in next(iter(h.collect())).samples][:3]  # le=0.1, le=1, le=+Inf
    [2.0, 3.0, 4.0]
    """

    def __init__(self, name: str, doc: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.doc = doc
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def update_many(self, values: Iterable[float]) -> None:
        bounds, counts = self.bounds, self.counts
        total = 0.0
        for value in values:
            value = max(0.0, value)
            counts[bisect_left(bounds, value)] += 1
            total += value
        self.sum += total

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        yield HistogramMetricFamily(self.name, self.doc, buckets=buckets, sum_value=self.sum)


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class RuntimeCollector:
    """Reads a :class:`~streams.runtime.WorkerRuntime`'s own counters when Prometheus scrapes.

    ``runtime`` needs ``sent`` (records acknowledged per topic), ``dlq_count``,
    ``mirror_failures``, ``signals.failures``, ``engine.stats``, ``feedback.drifts`` and
    ``model_client`` (``None`` without Triton).
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def describe(self) -> list[Metric]:
        return []  # families vary (no model client, no topic sent yet): no registry checks

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        sent = CounterMetricFamily(
            f"{PREFIX}_events_out", "Records the worker sent and the broker acknowledged, by topic",
            labels=["topic"],
        )
        for topic, count in sorted(rt.sent.items()):
            sent.add_metric([topic], count)
        yield sent
        stats = rt.engine.stats
        yield _counter("clicks_processed", "Valid clicks the engine handled", stats.events)
        yield _counter("duplicate_events", "Clicks whose event_id was seen before (no state "
                       "change, answer re-sent)", stats.duplicates)
        yield _counter("model_answers", "Clicks answered by the model", stats.model_answers)
        yield _counter("fallbacks", "Clicks answered by the stream recommenders because the "
                       "model could not answer", stats.fallbacks)
        yield _counter("drift_events", "Drifts the hit-rate detector signalled",
                       getattr(rt.feedback, "drifts", 0))
        yield _counter("redis_mirror_failures", "Failed mirrors of states and lists to Redis",
                       rt.mirror_failures)
        yield _counter("shared_signal_failures", "Failed reads/writes of Redis trending and "
                       "co-visitation (the worker's own signals answered)", rt.signals.failures)
        yield from self._model(rt.model_client)

    def _model(self, client: Any) -> Iterator[Metric]:
        live = client.live if client is not None else None
        version = GaugeMetricFamily(
            f"{PREFIX}_model_version", "Model version in use (0: none, the fallback answers)",
            labels=["model"],
        )
        version.add_metric([live.model_name if live else "none"], live.version if live else 0)
        yield version
        if client is None:
            return
        state = GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_state", "1 for the model circuit breaker's current state",
            labels=["state"],
        )
        current = client.circuit_state
        for name in BREAKER_STATES:
            state.add_metric([name], 1.0 if current == name else 0.0)
        yield state
        yield _counter("circuit_breaker_opens", "Times the model circuit opened",
                       client.breaker.opens)
        errors = CounterMetricFamily(
            f"{PREFIX}_model_errors", "Failed model calls, by kind", labels=["kind"]
        )
        s = client.stats
        for kind, count in (("error", s.errors), ("timeout", s.timeouts),
                            ("circuit_rejection", s.circuit_rejections)):
            errors.add_metric([kind], count)
        yield errors
        yield _counter("model_version_switches", "Live model version switches",
                       s.version_switches)


class ConsumerCollector:
    """Consumer positions per assigned partition of ``topics``, read when Prometheus scrapes.

    ``highwater`` is the partition's end offset as the consumer last fetched it; ``committed``
    the group's committed offset (the next record a restarted worker reads). Lag is their
    difference: records not yet answered *and* committed. A partition never committed counts
    from offset 0.
    """

    def __init__(
        self,
        topics: Callable[[], Iterable[str]],
        assignment: Callable[[], Iterable[Any]],
        highwater: Callable[[Any], int | None],
        committed: Callable[[Any], int | None],
    ) -> None:
        self.topics = topics
        self.assignment = assignment
        self.highwater = highwater
        self.committed = committed

    @classmethod
    def of_faust_app(cls, app: Any, topics: Iterable[str]) -> ConsumerCollector:
        """Positions from a Faust app: ``app.consumer`` (assignment, highwater) and Faust's
        own view of what it committed (``app.monitor``, else the offsets read at assignment)."""
        wanted = tuple(topics)

        def committed(tp: Any) -> int | None:
            offset = app.monitor.tp_committed_offsets.get(tp)
            if offset is None:
                offset = app.consumer._committed_offset.get(tp)
            return offset

        return cls(lambda: wanted, app.consumer.assignment, app.consumer.highwater, committed)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        names = ("consumer_lag", "consumer_highwater", "consumer_committed_offset")
        docs = ("Records behind the end of the partition (highwater - committed)",
                "End offset of the partition as last fetched",
                "Committed offset of the worker group")
        families = [
            GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["topic", "partition"])
            for name, doc in zip(names, docs, strict=True)
        ]
        assigned = GaugeMetricFamily(
            f"{PREFIX}_assigned_partitions", "Partitions of the topic assigned to this worker",
            labels=["topic"],
        )
        topics = set(self.topics())
        try:
            partitions = sorted(
                (tp for tp in self.assignment() if tp.topic in topics),
                key=lambda tp: (tp.topic, tp.partition),
            )
        except Exception:  # the consumer is not started yet
            partitions = []
        for topic in sorted(topics):
            assigned.add_metric([topic], sum(tp.topic == topic for tp in partitions))
        yield assigned
        for tp in partitions:
            try:
                highwater = self.highwater(tp)
            except Exception:
                highwater = None
            committed = self.committed(tp) or 0
            labels = [tp.topic, str(tp.partition)]
            families[2].add_metric(labels, committed)
            if highwater is not None:
                families[1].add_metric(labels, highwater)
                families[0].add_metric(labels, max(0, highwater - committed))
        yield from families


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, worker, message (and the exception).

    Messages are what the code logs: counters, ids, addresses and errors; the worker never
    logs a record's payload. Long messages are cut at ``max_chars``.
    """

    def __init__(self, worker: str = "", max_chars: int = 4000) -> None:
        super().__init__()
        self.worker = worker
        self.max_chars = max_chars

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage()[: self.max_chars],
        }
        if self.worker:
            line["worker"] = self.worker
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)[-self.max_chars:]
        return json.dumps(line, ensure_ascii=False, default=str)


def json_logging_config(level: int | str, worker: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for JSON lines on stdout (Faust's worker takes it as
    ``logging_config``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLogFormatter, "worker": worker}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["stdout"]},
    }
