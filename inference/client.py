"""The worker's model client: asyncio gRPC to Triton, micro-batched, versioned, with a fallback.

``ModelClient.recommend(sequences, exclude, k)`` returns a :class:`~streams.engine.ModelAnswer`
(top-K ``(item_id, score)`` per sequence, ``model="sasrec:N"``) or raises
:class:`~streams.engine.ModelUnavailable` at once when the circuit is open, the call times out
or Triton fails; the engine then answers from the stream recommenders and labels the list
``fallback``.

- Micro-batching: concurrent calls are merged into one Triton request of up to ``max_batch``
  sequences, waiting at most ``max_delay_s`` for company. ``max_batch=1`` sends every call on its
  own and leaves batching to Triton's dynamic batcher (batch in one place, not two).
- Timeouts and retries: each Triton call has a deadline (``timeout_s`` in all, retries included);
  a fast failure (e.g. connection refused) is retried at most ``retries`` times within it.
- Circuit breaker (:mod:`inference.circuit`): after consecutive failures calls are refused
  without touching the network; a probe closes it again when Triton is back.
- Versions: the client pins one version and sends it with every request. A watcher task polls
  the pin file and Triton's repository index; when the target version changes it loads that
  version's ``vocab.json`` and swaps (version, vocabulary) in one assignment. A batch takes the
  pair once, so one version's ids are never decoded with another's vocabulary.
- New items: :meth:`ModelClient.on_new_items` queues catalogue items; they are embedded from
  their text and published as version N+1 (:mod:`training.catalog`), which Triton loads (poll
  mode) and the watcher switches to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from inference import codec
from inference.circuit import CircuitBreaker
from streamrec.core import versions
from streamrec.core.ports import ModelAnswer, ModelUnavailable

if TYPE_CHECKING:
    from streamrec.core.config import Settings
    from streamrec.core.events import CatalogItem

log = logging.getLogger(__name__)

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
    seq_len: int = codec.SEQ_LEN
    exclude_min_width: int = 16
    catalog_flush_s: float = 1.0


@dataclass(frozen=True)
class LiveVersion:
    """The version in use and its vocabulary: swapped together, read together."""

    model_name: str
    version: int
    vocab: versions.Vocabulary

    @property
    def label(self) -> str:
        return f"{self.model_name}:{self.version}"


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
    catalog_versions: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Call:
    sequences: list[list[str]]
    exclude: list[list[str]]
    k: int
    future: asyncio.Future[ModelAnswer]


class ModelClient:
    """Async Triton client used by the Faust worker (see module docstring)."""

    def __init__(self, config: ClientConfig, text_encoder: Any = None) -> None:
        self.config = config
        self.stats = ClientStats()
        self.breaker = CircuitBreaker(config.failure_threshold, config.open_s)
        self.text_encoder = text_encoder
        self._live: LiveVersion | None = None
        self._triton: Any = None
        self._queue: asyncio.Queue[_Call] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._inflight: set[asyncio.Task[Any]] = set()
        self._pending_items: dict[str, str] = {}
        self._catalog_wakeup: asyncio.Event | None = None
        self._watch_wakeup: asyncio.Event | None = None
        self._pin_warned: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ModelClient:
        resolved = settings.resolved()
        if not resolved.triton_url:
            raise ValueError("no Triton address: set TRITON_URL or run `streamrec up`")
        values: dict[str, Any] = {
            "url": resolved.triton_url,
            "model_repository": settings.model_repository,
            "model_name": settings.model_name,
            "timeout_s": settings.triton_timeout_s,
            "max_batch": settings.triton_max_batch,
            "max_delay_s": settings.triton_max_delay_s,
        }
        values.update(overrides)
        return cls(ClientConfig(**values))

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the channel, pick the version to use (if Triton answers), start the tasks."""
        import tritonclient.grpc.aio as grpcclient

        self._triton = grpcclient.InferenceServerClient(
            self.config.url, channel_args=CHANNEL_ARGS
        )
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.config.max_in_flight)
        self._catalog_wakeup = asyncio.Event()
        self._watch_wakeup = asyncio.Event()
        with contextlib.suppress(Exception):
            await self.refresh_version()
        self._tasks = [
            asyncio.create_task(self._batch_loop(), name="model-client-batcher"),
            asyncio.create_task(self._watch_loop(), name="model-client-watcher"),
            asyncio.create_task(self._catalog_loop(), name="model-client-catalog"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._triton is not None:
            await self._triton.close()
            self._triton = None

    async def __aenter__(self) -> ModelClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what the worker calls ------------------------------------------------------------------
    @property
    def live(self) -> LiveVersion | None:
        return self._live

    @property
    def circuit_state(self) -> str:
        return self.breaker.state

    async def recommend(
        self, sequences: list[list[str]], exclude: list[list[str]], k: int
    ) -> ModelAnswer:
        """Top-``k`` per sequence from the pinned version; raises ModelUnavailable at once
        when the model cannot answer (no version yet, circuit open, timeout, error)."""
        self.stats.calls += 1
        self.stats.sequences += len(sequences)
        if self._queue is None:
            raise RuntimeError("ModelClient.start() was not awaited")
        if not sequences:
            live = self._live
            return ModelAnswer([], live.label if live else self.config.model_name)
        if self._live is None:
            return self._unavailable(len(sequences), "no model version is READY yet")
        if not self.breaker.allow():
            self.stats.circuit_rejections += 1
            return self._unavailable(len(sequences), "circuit open")
        future: asyncio.Future[ModelAnswer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(sequences, exclude, k, future))
        try:
            answer = await future
        except ModelUnavailable:
            self.stats.fallbacks += len(sequences)
            raise
        self.stats.model_answers += len(sequences)
        return answer

    async def on_new_items(self, items: list[CatalogItem]) -> None:
        """Queue new catalogue items; they become recommendable in the next catalogue version."""
        live = self._live
        for item in items:
            text = " ".join(t for t in (item.title, item.text) if t).strip()
            if not item.active or not text:
                continue
            if live is not None and item.item_id in live.vocab.index_of:
                continue
            self._pending_items[item.item_id] = text
        if self._pending_items and self._catalog_wakeup is not None:
            self._catalog_wakeup.set()

    def _unavailable(self, n: int, reason: str) -> NoReturn:
        self.stats.fallbacks += n
        raise ModelUnavailable(reason)

    # --- micro-batching -------------------------------------------------------------------------
    async def _batch_loop(self) -> None:
        assert self._queue is not None and self._slots is not None
        cfg = self.config
        while True:
            calls = [await self._queue.get()]
            size = len(calls[0].sequences)
            if cfg.max_batch > 1 and cfg.max_delay_s > 0:
                deadline = time.monotonic() + cfg.max_delay_s
                while size < cfg.max_batch:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        call = await asyncio.wait_for(self._queue.get(), timeout)
                    except TimeoutError:
                        break
                    calls.append(call)
                    size += len(call.sequences)
            while not self._queue.empty() and size < cfg.max_batch:
                call = self._queue.get_nowait()
                calls.append(call)
                size += len(call.sequences)
            await self._slots.acquire()
            task = asyncio.create_task(self._run_batch(calls))
            self._inflight.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        assert self._slots is not None
        self._slots.release()

    async def _run_batch(self, calls: list[_Call]) -> None:
        live = self._live
        try:
            if live is None:
                raise ModelUnavailable("no model version is READY")
            sequences = [s for c in calls for s in c.sequences]
            exclude = [e for c in calls for e in c.exclude]
            chunks = []
            for start in range(0, len(sequences), self.config.max_batch):
                end = start + self.config.max_batch
                chunks.append(self._infer(live, sequences[start:end], exclude[start:end]))
            results = await asyncio.gather(*chunks)
            top_items = np.concatenate([r[0] for r in results])
            top_scores = np.concatenate([r[1] for r in results])
        except ModelUnavailable as exc:
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(ModelUnavailable(str(exc)))
            return
        except Exception as exc:  # a bug must not leave callers waiting
            log.exception("model batch failed")
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(ModelUnavailable(repr(exc)))
            return
        start = 0
        for call in calls:
            end = start + len(call.sequences)
            lists = codec.decode(live.vocab, top_items[start:end], top_scores[start:end], call.k)
            if not call.future.done():
                call.future.set_result(ModelAnswer(lists, live.label))
            start = end

    async def _infer(
        self, live: LiveVersion, sequences: list[list[str]], exclude: list[list[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One Triton request for ``live``'s version, with deadline, retries and the breaker."""
        import tritonclient.grpc.aio as grpcclient
        from tritonclient.utils import InferenceServerException

        cfg = self.config
        item_seq = codec.encode_sequences(live.vocab, sequences, cfg.seq_len)
        excluded = codec.encode_exclusions(live.vocab, exclude, cfg.exclude_min_width)
        inputs = [
            grpcclient.InferInput("item_seq", list(item_seq.shape), "INT64"),
            grpcclient.InferInput("exclude_items", list(excluded.shape), "INT64"),
        ]
        inputs[0].set_data_from_numpy(item_seq)
        inputs[1].set_data_from_numpy(excluded)
        outputs = [grpcclient.InferRequestedOutput("top_items"),
                   grpcclient.InferRequestedOutput("top_scores")]
        deadline = time.monotonic() + cfg.timeout_s
        self.stats.batch_sizes[len(sequences)] = self.stats.batch_sizes.get(len(sequences), 0) + 1
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            self.stats.triton_requests += 1
            try:
                result = await self._triton.infer(
                    cfg.model_name, inputs, model_version=str(live.version), outputs=outputs,
                    client_timeout=max(remaining, 0.001),
                )
                items, scores = result.as_numpy("top_items"), result.as_numpy("top_scores")
                if items is None or scores is None or items.shape[0] != len(sequences):
                    raise InferenceServerException("empty or short output tensors")
            except InferenceServerException as exc:
                status = str(exc.status() or "")
                timed_out = "DEADLINE_EXCEEDED" in status or "Deadline" in str(exc)
                attempt += 1
                if not timed_out and attempt <= cfg.retries and (
                    deadline - time.monotonic() > cfg.timeout_s / 4
                ):
                    self.stats.retries += 1
                    continue
                self.stats.timeouts += timed_out
                self.stats.errors += not timed_out
                self.breaker.record_failure()
                if "version" in str(exc).lower() or "unknown model" in str(exc).lower():
                    self._request_watch()
                raise ModelUnavailable(f"{live.label}: {exc}") from None
            self.breaker.record_success()
            return items, scores

    # --- versions ------------------------------------------------------------------------------
    def _request_watch(self) -> None:
        if self._watch_wakeup is not None:
            self._watch_wakeup.set()

    async def ready_versions(self) -> set[int]:
        """Versions of the model Triton reports READY (raises when Triton does not answer)."""
        index = await self._triton.get_model_repository_index(
            as_json=True, client_timeout=max(1.0, self.config.timeout_s)
        )
        return {
            int(m["version"]) for m in index.get("models", [])
            if m.get("name") == self.config.model_name and m.get("state") == "READY"
            and str(m.get("version", "")).isdigit()
        }

    def target_version(self, ready: set[int]) -> int | None:
        """The pinned version when Triton has it READY, else the newest READY version."""
        pinned = versions.read_pin(self.config.model_repository, self.config.model_name)
        if pinned is not None:
            if pinned in ready:
                return pinned
            if self._pin_warned != pinned:
                log.warning("pinned version %s is not READY in Triton (READY: %s)",
                            pinned, sorted(ready))
                self._pin_warned = pinned
            if self._live is not None and self._live.version in ready:
                return self._live.version
        return max(ready) if ready else None

    async def refresh_version(self) -> LiveVersion | None:
        """Switch to the target version if it changed; returns the live version."""
        ready = await self.ready_versions()
        target = self.target_version(ready)
        if target is None or (self._live is not None and self._live.version == target):
            return self._live
        version_dir = self.config.model_repository / self.config.model_name / str(target)
        vocab = await asyncio.to_thread(versions.Vocabulary.load, version_dir)
        previous = self._live
        self._live = LiveVersion(self.config.model_name, target, vocab)  # one step
        self.stats.version_switches += previous is not None
        log.info("model version %s -> %s (%d items)",
                 previous.label if previous else None, self._live.label, len(vocab))
        return self._live

    async def _watch_loop(self) -> None:
        assert self._watch_wakeup is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watch_wakeup.wait(), self.config.watch_interval_s)
            self._watch_wakeup.clear()
            try:
                await self.refresh_version()
            except Exception as exc:  # Triton down: keep the current version
                log.debug("version watch: %s", exc)

    # --- catalogue refresh ---------------------------------------------------------------------
    async def _catalog_loop(self) -> None:
        assert self._catalog_wakeup is not None
        while True:
            await self._catalog_wakeup.wait()
            await asyncio.sleep(self.config.catalog_flush_s)  # gather a burst into one version
            self._catalog_wakeup.clear()
            pending, self._pending_items = self._pending_items, {}
            if not pending:
                continue
            try:
                version = await asyncio.to_thread(self._publish_catalog, pending)
            except FileNotFoundError as exc:  # no text encoder exported yet
                log.warning("new items not added to the model: %s", exc)
                continue
            except Exception:
                log.exception("catalogue refresh failed for %d items", len(pending))
                continue
            if version is not None:
                self.stats.catalog_versions += 1

    def _publish_catalog(self, pending: dict[str, str]) -> int | None:
        from training.catalog import refresh_latest

        return refresh_latest(
            self.config.model_repository / self.config.model_name, pending,
            encoder=self.text_encoder, model_repository=self.config.model_repository,
        )
