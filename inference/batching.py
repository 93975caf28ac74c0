"""The micro-batching gRPC caller: concurrent ``recommend`` calls merged into Triton requests.

- Micro-batching: concurrent calls are merged into one Triton request of up to ``max_batch``
  sequences, waiting at most ``max_delay_s`` for company. ``max_batch=1`` sends every call on its
  own and leaves batching to Triton's dynamic batcher (batch in one place, not two).
- Timeouts and retries: each Triton call has a deadline (``timeout_s`` in all, retries included);
  a fast failure (e.g. connection refused) is retried at most ``retries`` times within it.
- Circuit breaker: every batch records its outcome (success, or failure on every other path:
  error, timeout, no version, cancellation) on the breaker the caller is given, so a half-open
  probe always ends.
- Versions: a batch reads the live version (and its vocabulary) once, so its ids are encoded and
  decoded with one vocabulary; a request Triton refuses for its version asks the follower to
  look again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from inference import codec
from inference.circuit import CircuitBreaker
from inference.live_version import LiveVersion
from streamrec.core.ports import ModelAnswer, ModelUnavailable

if TYPE_CHECKING:
    from inference.client import ClientConfig, ClientStats

log = logging.getLogger(__name__)


@dataclass
class PendingCall:
    """One ``recommend`` call waiting for its batch."""

    sequences: list[list[str]]
    exclude: list[list[str]]
    k: int
    future: asyncio.Future[ModelAnswer]


class TritonBatcher:
    """Queues calls, sends them to Triton in batches and resolves each call's future.

    ``triton`` is a ``tritonclient.grpc.aio.InferenceServerClient``; ``live`` returns the version
    to score with (None: fail the batch with :class:`ModelUnavailable`); ``on_version_refused``
    is called when Triton does not know the version or model.
    """

    def __init__(
        self, config: ClientConfig, triton: Any, breaker: CircuitBreaker, stats: ClientStats,
        live: Callable[[], LiveVersion | None], on_version_refused: Callable[[], None],
    ) -> None:
        self.config = config
        self.triton = triton
        self.breaker = breaker
        self.stats = stats
        self.live = live
        self.on_version_refused = on_version_refused
        self._queue: asyncio.Queue[PendingCall] = asyncio.Queue()
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._inflight: set[asyncio.Task[Any]] = set()

    def submit(self, sequences: list[list[str]], exclude: list[list[str]],
               k: int) -> asyncio.Future[ModelAnswer]:
        """Queue one call; the future resolves to its answer or ModelUnavailable."""
        future: asyncio.Future[ModelAnswer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingCall(sequences, exclude, k, future))
        return future

    async def ready_versions(self) -> set[int]:
        """Versions of the model Triton reports READY (raises when Triton does not answer)."""
        index = await self.triton.get_model_repository_index(
            as_json=True, client_timeout=max(1.0, self.config.timeout_s)
        )
        return {
            int(m["version"]) for m in index.get("models", [])
            if m.get("name") == self.config.model_name and m.get("state") == "READY"
            and str(m.get("version", "")).isdigit()
        }

    async def drain(self) -> None:
        """Wait for the batches already sent to Triton."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # --- the batching loop -----------------------------------------------------------------
    async def run(self) -> None:
        """Gather calls into batches and start one Triton request per batch, until cancelled.

        Calls still queued when it stops get ModelUnavailable (no caller waits forever)."""
        try:
            while True:
                calls = await self._next_batch()
                try:
                    await self._slots.acquire()
                except BaseException:
                    _fail(calls, ModelUnavailable("model client closed"))
                    raise
                task = asyncio.create_task(self._run_batch(calls))
                self._inflight.add(task)
                task.add_done_callback(self._batch_done)
        finally:
            queued = []
            while not self._queue.empty():
                queued.append(self._queue.get_nowait())
            _fail(queued, ModelUnavailable("model client closed"))

    async def _next_batch(self) -> list[PendingCall]:
        cfg = self.config
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
                except BaseException:  # cancelled while gathering: these calls end too
                    _fail(calls, ModelUnavailable("model client closed"))
                    raise
                calls.append(call)
                size += len(call.sequences)
        while not self._queue.empty() and size < cfg.max_batch:
            call = self._queue.get_nowait()
            calls.append(call)
            size += len(call.sequences)
        return calls

    def _batch_done(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _run_batch(self, calls: list[PendingCall]) -> None:
        """Score one batch; the breaker records its outcome on every path.

        A success closes the circuit, anything else (no version, Triton's error or timeout, a
        bug, a cancellation) is a failure, so a half-open probe in this batch always ends.
        """
        live = self.live()
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
            self.breaker.record_failure()
            _fail(calls, ModelUnavailable(str(exc)))
            return
        except Exception as exc:  # a bug must not leave callers waiting
            log.exception("model batch failed")
            self.breaker.record_failure()
            _fail(calls, ModelUnavailable(repr(exc)))
            return
        except BaseException:  # cancelled: the callers get the fallback
            self.breaker.record_failure()
            _fail(calls, ModelUnavailable("model batch cancelled"))
            raise
        self.breaker.record_success()
        start = 0
        try:
            for call in calls:
                end = start + len(call.sequences)
                lists = codec.decode(live.vocab, top_items[start:end], top_scores[start:end],
                                     call.k)
                if not call.future.done():
                    call.future.set_result(ModelAnswer(lists, live.label))
                start = end
        except Exception as exc:  # a decoding bug must not leave callers waiting either
            log.exception("decoding a model batch failed")
            _fail(calls, ModelUnavailable(repr(exc)))

    async def _infer(
        self, live: LiveVersion, sequences: list[list[str]], exclude: list[list[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """One Triton request for ``live``'s version, with deadline and retries.

        Raises ModelUnavailable; the batch records the outcome on the breaker."""
        import tritonclient.grpc.aio as grpcclient
        from tritonclient.utils import InferenceServerException

        cfg = self.config
        item_seq = codec.encode_sequences(live.vocab, sequences, live.seq_len)
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
                result = await self.triton.infer(
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
                if "version" in str(exc).lower() or "unknown model" in str(exc).lower():
                    self.on_version_refused()
                raise ModelUnavailable(f"{live.label}: {exc}") from None
            return items, scores


def _fail(calls: list[PendingCall], error: ModelUnavailable) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(ModelUnavailable(str(error)))
