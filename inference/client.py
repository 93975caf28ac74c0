"""The worker's model client: asyncio gRPC to Triton, micro-batched, versioned, with a fallback.

``ModelClient.recommend(sequences, exclude, k)`` returns a
:class:`~streamrec.core.ports.ModelAnswer` (top-K ``(item_id, score)`` per sequence,
``model="sasrec:N"``) or raises
:class:`~streamrec.core.ports.ModelUnavailable` at once when there is no live version yet, the
circuit is open, the call times out or Triton fails; the engine then answers from the stream
recommenders and labels the list ``fallback``.

The client is a small facade over three parts, each in its own module:

- :class:`~inference.batching.TritonBatcher`: the micro-batching gRPC caller (deadlines,
  retries, batch sizes),
- :class:`~inference.circuit.CircuitBreaker`: after consecutive failures calls are refused
  without touching the network; a probe closes it again when Triton is back,
- :class:`~inference.live_version.VersionFollower`: the live version (pin or newest READY) and
  its vocabulary, swapped in one step.

Workers only follow versions. New catalogue items become scoreable when the one catalogue
service (``streamrec catalog``, :mod:`training.catalog_service`) publishes the next version;
Triton loads it (poll mode) and the follower switches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from inference.batching import TritonBatcher
from inference.circuit import CircuitBreaker
from inference.live_version import LiveVersion, VersionFollower
from streamrec.core.ports import ModelAnswer, ModelUnavailable

if TYPE_CHECKING:
    from streamrec.core.config import Settings

__all__ = ["ClientConfig", "ClientStats", "LiveVersion", "ModelClient"]

# fast reconnects: the default gRPC backoff (up to 120 s) would keep the circuit open long after
# Triton is back
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


@dataclass(frozen=True)
class ClientConfig:
    """How the client talks to Triton; :meth:`ModelClient.from_settings` fills it."""

    url: str
    model_repository: Path
    model_name: str = "sasrec"
    timeout_s: float = 0.08
    max_batch: int = 64
    max_delay_s: float = 0.002
    retries: int = 1
    failure_threshold: int = 3
    open_s: float = 1.0
    max_in_flight: int = 16
    watch_interval_s: float = 0.5
    exclude_min_width: int = 16
    # gRPC TLS (the triton section's grpc_options(): PEM file paths); plaintext when ssl=False
    ssl: bool = False
    root_certificates: str | None = None
    private_key: str | None = None
    certificate_chain: str | None = None

    def grpc_options(self) -> dict[str, Any]:
        """tritonclient's TLS keyword arguments (empty for plaintext)."""
        if not self.ssl:
            return {}
        return {"ssl": True, "root_certificates": self.root_certificates,
                "private_key": self.private_key, "certificate_chain": self.certificate_chain}


@dataclass
class ClientStats:
    """Counters a worker reports (``ModelClient.stats.as_dict()``)."""

    calls: int = 0
    sequences: int = 0
    model_answers: int = 0
    fallbacks: int = 0
    triton_requests: int = 0
    errors: int = 0
    timeouts: int = 0
    retries: int = 0
    circuit_rejections: int = 0
    version_switches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelClient:
    """Async Triton client used by the Faust worker (see module docstring).

    Use it as ``async with ModelClient(config) as client`` or ``await client.start()`` /
    ``await client.close()``.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.stats = ClientStats()
        # a probe without a verdict (a lost batch) counts as failed after this long
        self.breaker = CircuitBreaker(
            config.failure_threshold, config.open_s,
            probe_timeout_s=max(config.open_s, 10 * config.timeout_s),
        )
        self.follower = VersionFollower(
            config.model_repository, config.model_name, self._ready_versions,
            interval_s=config.watch_interval_s, on_switch=self._count_switch,
        )
        self._batcher: TritonBatcher | None = None  # set by start(): gRPC needs a running loop
        self._tasks: list[asyncio.Task[Any]] = []

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ModelClient:
        resolved = settings.resolved()
        if not resolved.triton.url:
            raise ValueError("no Triton address: set TRITON_URL or run `streamrec up`")
        values: dict[str, Any] = {
            "url": resolved.triton.url,
            "model_repository": settings.triton.model_repository,
            "model_name": settings.triton.model_name,
            "timeout_s": settings.triton.timeout_s,
            "max_batch": settings.triton.max_batch,
            "max_delay_s": settings.triton.max_delay_s,
            **settings.client.model_dump(),
            **settings.triton.grpc_options(),
        }
        values.update(overrides)
        return cls(ClientConfig(**values))

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the channel, pick the version to use (if Triton answers), start the tasks."""
        import tritonclient.grpc.aio as grpcclient

        triton = grpcclient.InferenceServerClient(
            self.config.url, channel_args=CHANNEL_ARGS, **self.config.grpc_options())
        self._batcher = TritonBatcher(
            self.config, triton, self.breaker, self.stats,
            live=lambda: self.follower.live, on_version_refused=self.follower.request_check,
        )
        with contextlib.suppress(Exception):
            await self.follower.refresh()
        self._tasks = [
            asyncio.create_task(self._batcher.run(), name="model-client-batcher"),
            asyncio.create_task(self.follower.run(), name="model-client-version-follower"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.drain()
            await batcher.triton.close()

    async def __aenter__(self) -> ModelClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what the worker calls ------------------------------------------------------------------
    @property
    def live(self) -> LiveVersion | None:
        return self.follower.live

    @property
    def circuit_state(self) -> str:
        return self.breaker.state

    async def recommend(
        self, sequences: list[list[str]], exclude: list[list[str]], k: int
    ) -> ModelAnswer:
        """Top-``k`` per sequence from the live version; raises ModelUnavailable at once
        when the model cannot answer (no version yet, circuit open, timeout, error)."""
        self.stats.calls += 1
        self.stats.sequences += len(sequences)
        if self._batcher is None:
            raise RuntimeError("ModelClient.start() was not awaited")
        live = self.follower.live
        if not sequences:
            return ModelAnswer([], live.label if live else self.config.model_name)
        if live is None:
            return self._unavailable(len(sequences), "no model version is READY yet")
        if not self.breaker.allow():
            self.stats.circuit_rejections += 1
            return self._unavailable(len(sequences), "circuit open")
        try:
            answer = await self._batcher.submit(sequences, exclude, k)
        except ModelUnavailable:
            self.stats.fallbacks += len(sequences)
            raise
        self.stats.model_answers += len(sequences)
        return answer

    async def refresh_version(self) -> LiveVersion | None:
        """Switch to the target version now if it changed; returns the live version."""
        return await self.follower.refresh()

    def _unavailable(self, n: int, reason: str) -> NoReturn:
        self.stats.fallbacks += n
        raise ModelUnavailable(reason)

    async def _ready_versions(self) -> set[int]:
        if self._batcher is None:
            raise ModelUnavailable("ModelClient.start() was not awaited")
        return await self._batcher.ready_versions()

    def _count_switch(self, previous: LiveVersion, new: LiveVersion) -> None:
        self.stats.version_switches += 1
