"""A circuit breaker: stop calling a server that keeps failing, probe it again after a pause.

States: ``closed`` (calls go through), ``open`` (calls are refused at once, for ``open_s``
seconds after ``failure_threshold`` consecutive failures), ``half_open`` (one probe call is let
through; its success closes the circuit, its failure opens it again).

Every probe ends with a verdict. The caller records success or failure on every path (an
error, a timeout, a cancellation); a probe whose verdict has not arrived ``probe_timeout_s``
after it went out counts as failed, so a lost probe can never hold the circuit half-open with
every call refused.

>>> now = [0.0]
>>> breaker = CircuitBreaker(failure_threshold=2, open_s=10.0, clock=lambda: now[0])
>>> breaker.record_failure(); breaker.record_failure(); breaker.state
'open'
>>> breaker.allow()
False
>>> now[0] = 10.0; breaker.allow(), breaker.allow()  # half-open: one probe at a time
(True, False)
>>> breaker.record_success(); breaker.state
'closed'
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a single half-open probe."""

    def __init__(
        self,
        failure_threshold: int = 3,
        open_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        probe_timeout_s: float = 10.0,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.probe_timeout_s = probe_timeout_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probe_started_at: float | None = None  # set while a probe is out
        self.opens = 0
        self.lost_probes = 0  # probes that never reported and were counted as failed

    @property
    def probing(self) -> bool:
        return self.probe_started_at is not None

    @property
    def state(self) -> str:
        self._expire_lost_probe()
        if self.opened_at is None:
            return CLOSED
        if self.clock() - self.opened_at >= self.open_s:
            return HALF_OPEN
        return OPEN

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one probe at a time."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self.probing:
            self.probe_started_at = self.clock()
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probe_started_at = None

    def record_failure(self) -> None:
        self._open_after_failure(self.clock())

    def _open_after_failure(self, at: float) -> None:
        self.failures += 1
        if self.probing or (self.opened_at is None and self.failures >= self.failure_threshold):
            if self.opened_at is None:
                self.opens += 1
            self.opened_at = at
        self.probe_started_at = None

    def _expire_lost_probe(self) -> None:
        """A probe without a verdict after ``probe_timeout_s`` failed: open again from then."""
        started = self.probe_started_at
        if started is not None and self.clock() - started >= self.probe_timeout_s:
            self.lost_probes += 1
            self._open_after_failure(started + self.probe_timeout_s)
