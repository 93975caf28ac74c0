"""A circuit breaker: stop calling a server that keeps failing, probe it again after a pause.

States: ``closed`` (calls go through), ``open`` (calls are refused at once, for ``open_s``
seconds after ``failure_threshold`` consecutive failures), ``half_open`` (one probe call is let
through; its success closes the circuit, its failure opens it again).

>>> breaker = CircuitBreaker(failure_threshold=2, open_s=10.0, clock=lambda: 0.0)
>>> breaker.record_failure(); breaker.record_failure(); breaker.state
'open'
>>> breaker.allow()
False
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
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.opens = 0

    @property
    def state(self) -> str:
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
            self.probing = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.probing or (self.opened_at is None and self.failures >= self.failure_threshold):
            if self.opened_at is None:
                self.opens += 1
            self.opened_at = self.clock()
        self.probing = False
