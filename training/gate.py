"""Whether a candidate goes live, and whether it stays live.

Pure decision objects (no Kafka, no clock of their own; River's verbs):

- :class:`PromotionGate` compares a candidate with the live version on the same recent
  holdout (full ranking, :mod:`streamrec.core.metrics`) and promotes only a clear winner.
- :class:`PromotionWatch` is the live check after a promotion: it sums the workers'
  ``hit_rate`` reports per version and rolls back when the new version clearly loses to the
  previous one over a window (a two-proportion z-test).

>>> gate = PromotionGate(metric="hr@10", min_gain=0.02, min_cases=10)
>>> gate.decide({"hr@10": 0.30, "n_cases": 100}, {"hr@10": 0.25, "n_cases": 100}).promote
True
>>> gate.decide({"hr@10": 0.25, "n_cases": 100}, {"hr@10": 0.25, "n_cases": 100}).reason
'candidate hr@10 0.2500 does not beat live 0.2500 by 2%'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    candidate: dict[str, float]
    live: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, "metric": self.metric,
                "candidate": _rounded(self.candidate), "live": _rounded(self.live)}


@dataclass(frozen=True)
class PromotionGate:
    """Promote when the candidate beats live on ``metric`` by ``min_gain`` (relative)."""

    metric: str = "ndcg@10"
    min_gain: float = 0.02
    min_cases: int = 50

    def decide(self, candidate: dict[str, float], live: dict[str, float] | None) -> GateDecision:
        m = self.metric
        cases = int(candidate.get("n_cases", 0))
        if cases < self.min_cases:
            return GateDecision(False, f"only {cases} holdout cases (< {self.min_cases})", m,
                                candidate, live or {})
        if live is None:
            return GateDecision(True, "no live version", m, candidate, {})
        c, v = candidate[m], live[m]
        if c > v * (1.0 + self.min_gain) and c > v:
            return GateDecision(True, f"candidate {m} {c:.4f} beats live {v:.4f}", m,
                                candidate, live)
        return GateDecision(
            False, f"candidate {m} {c:.4f} does not beat live {v:.4f} by {self.min_gain:.0%}",
            m, candidate, live,
        )


# --- after a promotion: the live check ---------------------------------------------------------
@dataclass
class PromotionWatch:
    """Compares the live hit rate of the new version with the previous one's.

    Feed it the workers' ``hit_rate`` events (:meth:`learn_one`). Before a promotion it keeps
    the previous version's counts as the reference; after :meth:`start`, once the new version
    has ``window`` outcomes, :meth:`decide` says ``rollback`` when its hit rate is below the
    reference by more than ``tolerance`` (relative) *and* the difference is significant
    (z > ``z``), else ``keep``; None while still watching.

    >>> w = PromotionWatch(window=1_000)
    >>> _ = w.learn_one({"type": "hit_rate", "versions": {"sasrec:1": {"n": 2000, "hits": 600}}})
    >>> w.start(new="sasrec:2", previous="sasrec:1")
    >>> _ = w.learn_one({"type": "hit_rate", "versions": {"sasrec:2": {"n": 1000, "hits": 200}}})
    >>> w.decide()
    'rollback'
    """

    window: int = 2_000
    tolerance: float = 0.1
    z: float = 2.0
    counts: dict[str, list[int]] = field(default_factory=dict)
    new: str | None = None
    previous: str | None = None
    reference: tuple[int, int] = (0, 0)

    def learn_one(self, event: dict[str, Any]) -> PromotionWatch:
        if event.get("type") != "hit_rate":
            return self
        for version, c in event.get("versions", {}).items():
            n_hits = self.counts.setdefault(version, [0, 0])
            n_hits[0] += int(c.get("n", 0))
            n_hits[1] += int(c.get("hits", 0))
        return self

    def start(self, new: str, previous: str) -> None:
        """A promotion happened: watch ``new`` against what ``previous`` achieved so far."""
        prev = self.counts.get(previous, [0, 0])
        self.reference = (prev[0], prev[1])
        self.counts[new] = [0, 0]
        self.new, self.previous = new, previous

    def decide(self) -> str | None:
        if self.new is None:
            return None
        n_new, h_new = self.counts.get(self.new, [0, 0])
        n_ref, h_ref = self.reference
        if n_new < self.window or n_ref == 0:
            return None
        p_new, p_ref = h_new / n_new, h_ref / n_ref
        pooled = (h_new + h_ref) / (n_new + n_ref)
        se = math.sqrt(max(pooled * (1 - pooled) * (1 / n_new + 1 / n_ref), 1e-12))
        worse = p_new < p_ref * (1.0 - self.tolerance) and (p_ref - p_new) / se > self.z
        self.new = None
        return "rollback" if worse else "keep"

    def rates(self, version: str) -> float:
        n, h = self.counts.get(version, [0, 0])
        return h / n if n else 0.0


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in metrics.items()}
