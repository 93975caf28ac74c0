"""The worker's small HTTP server: ``/metrics``, ``/health`` and ``/ready``.

It runs on the worker's own event loop (aiohttp, already a Faust dependency), bound to
``observability.host:port`` (127.0.0.1:9464 by default; port 0 picks a free one, which the
worker publishes in ``workers:ready``). Serving on the worker's loop is what makes ``/health``
mean something: an answer proves the loop is turning.

- ``GET /health``: 200 while the process is alive and its event loop responsive.
- ``GET /ready``: 200 once the runtime is built, the worker finished starting (partitions
  assigned, tables recovered), no rebalance is in progress and no agent has crashed; else 503.
  The body says which facts hold, as JSON.
- ``GET /metrics``: the Prometheus text format, rendered at scrape time (the counters behind it
  are plain attributes the worker updates per batch; see :mod:`streams.observability`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from streamrec.core.config import Settings
from streams.observability import PREFIX, ConsumerCollector

log = logging.getLogger(__name__)

# (ready, facts) for /ready
ReadinessCheck = Callable[[], tuple[bool, dict[str, Any]]]


@dataclass
class Readiness:
    """The facts ``/ready`` answers from; the worker sets ``started`` and reports crashes.

    ``runtime`` returns the worker's runtime once built (``None`` before); ``rebalancing``
    says whether the consumer group is rebalancing now; ``assigned`` counts the partitions this
    worker consumes (0 is ready too: more workers than partitions leaves some idle); ``crash``
    returns why an agent crashed (``PendingRuntime.crash_reason``), ``None`` while none has.

    >>> readiness = Readiness(runtime=lambda: object())
    >>> readiness.check()[0]
    False
    >>> readiness.started = True; readiness.check()[0]
    True
    >>> readiness.record_crash("agent handle_clicks crashed"); readiness.check()
    (False, {'runtime_built': True, 'started': True, 'rebalancing': False, 'partitions': 0, \
'crashed': 'agent handle_clicks crashed'})
    """

    runtime: Callable[[], Any]
    rebalancing: Callable[[], bool] = lambda: False
    assigned: Callable[[], int] = lambda: 0
    crash: Callable[[], object | None] = lambda: None
    started: bool = False
    crashed: str | None = None
    extra: list[ReadinessCheck] = field(default_factory=list)

    def record_crash(self, reason: str) -> None:
        if self.crashed is None:
            self.crashed = reason

    def check(self) -> tuple[bool, dict[str, Any]]:
        runtime = self.runtime()
        reason = self.crash()
        crashed = self.crashed or (f"{type(reason).__name__}: {reason}" if reason else None)
        facts: dict[str, Any] = {
            "runtime_built": runtime is not None,
            "started": self.started,
            "rebalancing": _safe(self.rebalancing, False),
            "partitions": _safe(self.assigned, 0),
            "crashed": crashed,
        }
        ready = facts["runtime_built"] and self.started and not facts["rebalancing"]
        ready = ready and crashed is None
        for check in self.extra:
            ok, more = check()
            facts.update(more)
            ready = ready and ok
        return bool(ready), facts


def _safe(read: Callable[[], Any], default: Any) -> Any:
    try:
        return read()
    except Exception:  # the consumer is not started yet
        return default


class ProbeServer:
    """``/metrics``, ``/health`` and ``/ready`` on ``host:port``; :meth:`start` then
    :meth:`stop`.

    ``registries`` returns what to expose at each scrape (the worker's registry appears once
    its runtime is built).
    """

    def __init__(
        self,
        host: str,
        port: int,
        readiness: Readiness,
        registries: Callable[[], Iterable[Any]],
    ) -> None:
        self.host = host
        self.port = port
        self.readiness = readiness
        self.registries = registries
        self._runner: web.AppRunner | None = None
        self.address: str | None = None  # host:port once started

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> str:
        if self.address is not None:  # a worker restarted in place keeps its server
            return self.address
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1] if runner.addresses else self.port
        self.address = f"{self.host}:{port}"
        log.info("metrics and probes on http://%s (/metrics, /health, /ready)", self.address)
        return self.address

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _ready(self, request: web.Request) -> web.Response:
        ready, facts = self.readiness.check()
        return web.Response(
            status=200 if ready else 503, content_type="application/json",
            text=json.dumps({"ready": ready, **facts}),
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = b"".join(generate_latest(registry) for registry in self.registries())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class ReadinessCollector:
    """``streamrec_worker_ready`` (1/0) at each scrape, from :class:`Readiness`."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        ready = GaugeMetricFamily(f"{PREFIX}_worker_ready", "1 while /ready answers 200")
        ready.add_metric([], 1.0 if self.readiness.check()[0] else 0.0)
        return [ready]


def worker_probes(settings: Settings, pending: Any, app: Any) -> ProbeServer:
    """The probe server of a Faust worker: ``pending`` is its
    :class:`~streams.app.PendingRuntime`, ``app`` its Faust app (consumer positions)."""
    topics = (settings.kafka.clicks_topic, settings.kafka.items_topic)

    def assigned() -> int:
        return sum(tp.topic in topics for tp in app.consumer.assignment())

    readiness = Readiness(
        runtime=lambda: pending.runtime, rebalancing=lambda: bool(app.rebalancing),
        assigned=assigned, crash=lambda: pending.crash_reason,
    )
    disable_created_metrics()  # no *_created series: they double the exposition for nothing
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsumerCollector.of_faust_app(app, topics))
    registry.register(ReadinessCollector(readiness))

    def registries() -> list[Any]:
        built = pending.runtime
        return [registry] if built is None else [registry, built.metrics.registry]

    o = settings.observability
    return ProbeServer(o.host, o.port, readiness, registries)
