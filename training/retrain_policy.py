"""When to retrain: drift requests, a schedule, a cooldown, and which events to train on.

:class:`RetrainPolicy` is a pure decision object (no Kafka, no clock of its own; River's verbs):
it learns from ``model-events`` (drift alarms are retrain requests) and decides when to retrain.
The trainer (:mod:`training.trainer`) and the replay's loop (:mod:`training.adaptive_loop`) both
ask it.

>>> policy = RetrainPolicy(schedule_every=1_000, cooldown=100)
>>> policy.decide(now=50) is None
True
>>> _ = policy.learn_one({"type": "drift", "request": "retrain"})
>>> policy.decide(now=60)
'drift'
>>> policy.decide(now=70) is None      # the retrain just happened
True
>>> policy.decide(now=1_060)
'schedule'
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from training.data import Interactions
from training.holdout import holdout_split


@dataclass
class RetrainPolicy:
    """Retrain on a drift request or every ``schedule_every``, at most once per ``cooldown``.

    After a drift the data keeps changing, so the policy also follows up: ``followups``
    more retrains, ``followup_every`` apart (each on fresher post-drift data).
    ``now`` is any monotone clock the caller chooses (events replayed, event-time ms, seconds).
    """

    schedule_every: float | None = None
    cooldown: float = 0.0
    followups: int = 0
    followup_every: float | None = None
    last_retrain: float | None = None
    pending: str | None = None
    requests: int = 0
    followups_left: int = 0
    regime_since_ts: int | None = None  # event time of the latest drift (its ``ts``)

    def learn_one(self, event: dict[str, Any]) -> RetrainPolicy:
        if event.get("type") == "drift" or event.get("request") == "retrain":
            self.requests += 1
            self.pending = "drift" if event.get("type") == "drift" else "request"
            self.followups_left = self.followups
            if event.get("type") == "drift" and isinstance(event.get("ts"), int):
                self.regime_since_ts = event["ts"]
        return self

    def training_window(self, ts: list[int], recent_events: int, min_events: int,
                        reason: str | None = None) -> int:
        """Where a retrain's events start in the time-ordered event times ``ts``.

        Normally the last ``recent_events``. For the retrain a drift asked for and its
        follow-ups (``reason`` ``drift`` or ``followup``; ``None`` counts as one), the new
        regime: the events since the drift's event time (what ADWIN does to its own window),
        at least ``min_events`` (extended backwards, which also gives the first post-drift
        clicks their context), at most ``recent_events``; ``min_events = 0`` turns the regime
        window off. Trained on a window that is mostly pre-drift, a fine-tune spends its
        epochs on the old regime and its early stopping watches the old regime.

        >>> p = RetrainPolicy()
        >>> p.training_window(list(range(100)), recent_events=50, min_events=10)
        50
        >>> _ = p.learn_one({"type": "drift", "request": "retrain", "ts": 95})
        >>> p.training_window(list(range(100)), recent_events=50, min_events=10)
        90
        >>> p.training_window(list(range(100)), recent_events=50, min_events=2)
        95
        >>> p.training_window(list(range(100)), recent_events=50, min_events=2, reason="schedule")
        50
        """
        start = max(0, len(ts) - recent_events)
        if self.regime_since_ts is None or min_events <= 0 or reason in ("schedule", "request"):
            return start
        regime = bisect.bisect_left(ts, self.regime_since_ts)
        return max(start, min(regime, max(0, len(ts) - min_events)))

    def training_events(self, recent: Interactions, recent_events: int, min_events: int,
                        reason: str | None, min_cases: int) -> tuple[Interactions, str]:
        """The events a retrain uses and which window they are (``regime`` or ``recent``).

        The regime window (:meth:`training_window`) only when its holdout has at least
        ``min_cases`` users (each needs 3 events in it): a candidate the gate cannot judge is
        no drift response, and a short "drift" on a noisy stream leaves a window too thin to
        train on; then the recent window as usual.
        """
        recent_start = max(0, len(recent) - recent_events)
        start = self.training_window(recent.ts, recent_events, min_events, reason)
        if start != recent_start:
            regime = recent.slice(start, len(recent))
            if len(holdout_split(regime)[1].targets) >= min_cases:
                return regime, "regime"
        return recent.slice(recent_start, len(recent)), "recent"

    def decide(self, now: float) -> str | None:
        """The reason to retrain now (``drift``, ``request``, ``followup``, ``schedule``)."""
        if self.last_retrain is not None and now - self.last_retrain < self.cooldown:
            return None
        since = now - (self.last_retrain if self.last_retrain is not None else 0.0)
        reason = self.pending
        if reason is None and self.followups_left > 0 and self.followup_every is not None \
                and since >= self.followup_every:
            reason = "followup"
            self.followups_left -= 1
        if reason is None and self.schedule_every is not None and since >= self.schedule_every:
            reason = "schedule"
        if reason is not None:
            self.pending = None
            self.last_retrain = now
        return reason
