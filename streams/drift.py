"""Drift detection on the live hit stream (River's ADWIN and Page-Hinkley).

Each click says whether the list the user saw before it contained it (a *hit*). When the
interests of users move, the hit rate drops. :class:`HitRateDriftDetector` feeds that 0/1
stream to two River detectors and reports a drift only when the hit rate *fell*: an increase
(warm-up, a better model going live) is not an alarm.

- ADWIN keeps an adaptive window and fires when two sub-windows differ in mean.
- Page-Hinkley (``mode="down"``) accumulates deviations below the running mean.

Either detector's alarm is a *suspicion*; it becomes a drift only when, within
``recent_window`` events, the recent hit rate (a moving average over that many events) is
``min_drop`` below the reference (ADWIN's mean when the suspicion opened). That filters
Page-Hinkley's false alarms (its mean is cumulative, so on a stream whose level rose during
warm-up it later reads the catching-up as a drop) and ADWIN's alarms on rises.

After a detection both detectors restart, so that the next reference is the post-drift
regime, and no new alarm is raised for ``cooldown`` events: the moving average that confirms an
alarm spans ``recent_window`` events, so for that long it still mixes the hits from before the
drift with the fall that is still going on (one drift is one alarm). A new model version going
live (:meth:`reset`) restarts the reference too, without any blind stretch: the restarted
detectors gather their own evidence (``ph_min_instances``, ADWIN's window) before they can fire.

Not per user, not shared: each worker watches the hit stream of its own partitions (a random
sample of users, since ``clicks`` is keyed by user), so every worker sees a global drift a
little later than one worker seeing all events would. Any worker's detection publishes a
retrain request on ``model-events``; the trainer's :class:`~training.retrain_policy.RetrainPolicy`
merges requests that arrive within its cooldown. Nothing needs to be synchronised.

>>> d = HitRateDriftDetector(warmup=0)
>>> for _ in range(2_000):
...     _ = d.update(True if _ % 3 == 0 else False)      # hit rate 0.33
>>> fired = [i for i in range(2_000) if d.update(i % 50 == 0).drift_detected]  # 0.02
>>> len(fired) >= 1 and fired[0] < 300
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import drift


@dataclass(frozen=True, slots=True)
class Detection:
    """One drift alarm: at which update, by which detector, and the hit rate before/after."""

    at: int
    detector: str
    before: float
    after: float

    def to_json(self) -> dict[str, Any]:
        """The alarm's fields for a ``model-events`` record; the update count is ``at_update``
        (the record's own ``at`` is its wall-clock time, which this must not overwrite)."""
        return {"at_update": self.at, "detector": self.detector,
                "hit_rate_before": round(self.before, 4), "hit_rate_after": round(self.after, 4)}


@dataclass
class DriftConfig:
    adwin_delta: float = 0.002
    ph_delta: float = 0.005
    ph_threshold: float = 40.0
    ph_min_instances: int = 100
    warmup: int = 200  # no alarm during the first updates (everything is still learning)
    cooldown: int = 300  # updates after an alarm without a new one (one recent_window)
    min_drop: float = 0.25  # relative drop of the hit rate an alarm needs
    recent_window: int = 300  # events of the fast moving average that confirms Page-Hinkley


@dataclass
class HitRateDriftDetector:
    """ADWIN + Page-Hinkley on a 0/1 hit stream; alarms only on drops."""

    warmup: int | None = None
    config: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        if self.warmup is not None:
            self.config.warmup = self.warmup
        self.n = 0
        self.detections: list[Detection] = []
        self._drift = False
        self._last_alarm = -(10**12)
        self.recent_hit_rate = 0.0
        self._suspect: tuple[str, int, float] | None = None
        self._reset_detectors()

    def _reset_detectors(self) -> None:
        cfg = self.config
        self.adwin = drift.ADWIN(delta=cfg.adwin_delta)
        self.page_hinkley = self._page_hinkley()

    def _page_hinkley(self) -> drift.PageHinkley:
        cfg = self.config
        return drift.PageHinkley(
            min_instances=cfg.ph_min_instances, delta=cfg.ph_delta,
            threshold=cfg.ph_threshold, mode="down",
        )

    @property
    def drift_detected(self) -> bool:
        """True right after the update that raised an alarm."""
        return self._drift

    @property
    def hit_rate(self) -> float:
        """ADWIN's current estimate of the hit rate (its window's mean)."""
        return float(self.adwin.estimation)

    def update(self, hit: bool | float) -> HitRateDriftDetector:
        cfg = self.config
        x = float(hit)
        self.n += 1
        self._drift = False
        reference = self.adwin.estimation
        self.recent_hit_rate += (x - self.recent_hit_rate) / min(self.n, cfg.recent_window)
        self.adwin.update(x)
        self.page_hinkley.update(x)
        # a detector's alarm opens a suspicion, confirmed when the recent hit rate has fallen
        # ``min_drop`` below the reference within ``recent_window`` events
        for name, detector in (("adwin", self.adwin), ("page_hinkley", self.page_hinkley)):
            if detector.drift_detected and self._suspect is None:
                self._suspect = (name, self.n, reference)
        if self._suspect is not None:
            name, since, before = self._suspect
            confirmed = self.recent_hit_rate < before * (1.0 - cfg.min_drop)
            in_warmup = self.n <= cfg.warmup
            in_cooldown = self.n - self._last_alarm < cfg.cooldown
            if confirmed and not in_warmup and not in_cooldown:
                self._drift = True
                self._last_alarm = self.n
                self.detections.append(Detection(self.n, name, before, self.recent_hit_rate))
                self._reset_detectors()
                self._suspect = None
            elif self.n - since > cfg.recent_window:
                self._suspect = None
        return self

    def reset(self) -> HitRateDriftDetector:
        """Forget the reference (e.g. a new model version went live); no blind stretch."""
        self._reset_detectors()
        self._suspect = None
        return self
