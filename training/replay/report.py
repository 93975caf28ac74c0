"""The replay's report: the summary per variant, the drift metrics and the HR@10 plot.

Recovery: a variant's pre-drift HR@10 is measured over the ``window`` events before the drift;
it has recovered at the first event whose trailing window of ``window`` scored clicks lies wholly
after the drift and reaches :data:`RECOVERY_SHARE` of that. A variant that never recovers gets
the horizon (the events from the drift to the end) and the speed-up is marked a lower bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.replay.prequential import K

RECOVERY_SHARE = 0.9


def summarize(data: Any, runs: dict[str, Any], window: int) -> dict[str, Any]:
    total = len(data.stream)
    out: dict[str, Any] = {
        "dataset": data.name, "warm_events": len(data.warm), "replayed_events": total,
        "window": window, "variants": {}, "windows": {}, "unavailable": {}, "seconds": {},
        "decisions": {}, "counters": {},
    }
    for name, run in runs.items():
        if run.unavailable:
            out["variants"][name] = {"hr@10": None, "ndcg@10": None}
            out["unavailable"][name] = run.unavailable
            continue
        m = run.metrics()
        out["variants"][name] = {"hr@10": round(m["hr@10"], 4), "ndcg@10": round(m["ndcg@10"], 4),
                                 "n": m["n"]}
        out["windows"][name] = [round(w["hr@10"], 4) for w in run.windows(window, total)]
        out["seconds"][name] = round(run.seconds, 1)
        if getattr(run, "counters", None):
            out["counters"][name] = dict(run.counters)
        if run.markers:
            out["decisions"][name] = [
                {k: v for k, v in marker.items() if k in (
                    "type", "index", "reason", "promote", "candidate", "live", "model",
                    "detector", "seconds", "metric", "window")}
                for marker in run.markers
            ]
    if data.drift_at is not None:
        out.update(drift_metrics(data, runs, window))
    return out


def drift_metrics(data: Any, runs: dict[str, Any], window: int) -> dict[str, Any]:
    """Detection delay and false alarms (adaptive), recovery per variant and the speed-up."""
    at, total = data.drift_at, len(data.stream)
    horizon = total - at
    out: dict[str, Any] = {"drift_at_event": at, "horizon_events": horizon}
    adaptive = runs.get("adaptive")
    if adaptive is not None and not adaptive.unavailable:
        detections = [m["index"] for m in adaptive.markers if m["type"] == "drift"]
        after = [i for i in detections if i >= at]
        out["detection_delay_events"] = after[0] - at if after else None
        out["false_alarms"] = len([i for i in detections if i < at])
    recovery: dict[str, Any] = {}
    for name, run in runs.items():
        if run.unavailable:
            continue
        pre = run.metrics(max(0, at - window), at)["hr@10"]
        events = recovery_events(run, at, window, RECOVERY_SHARE * pre)
        recovery[name] = {"pre_drift_hr@10": round(pre, 4),
                          "recovery_events": events if events is not None else horizon,
                          "recovered": events is not None}
    out["recovery"] = recovery
    frozen, adapt = recovery.get("frozen"), recovery.get("adaptive")
    if frozen and adapt:
        out["recovery_speedup"] = round(frozen["recovery_events"]
                                        / max(1, adapt["recovery_events"]), 2)
        out["recovery_speedup_lower_bound"] = not frozen["recovered"]
    return out


def recovery_events(run: Any, at: int, window: int, target: float) -> int | None:
    """Events from the drift to the first trailing window (wholly after it) at ``target``."""
    positions = np.asarray(run.positions)
    hits = (np.asarray(run.ranks) < K).astype(np.float64)
    after = np.flatnonzero(positions >= at)
    if len(after) < window:
        return None
    first = after[0]
    csum = np.concatenate([[0.0], np.cumsum(hits[first:])])
    rate = (csum[window:] - csum[:-window]) / window
    reached = np.flatnonzero(rate >= target)
    if not len(reached):
        return None
    return int(positions[first + reached[0] + window - 1] - at)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"prequential replay of {summary['dataset']}: {summary['replayed_events']} events "
             f"scored after {summary['warm_events']} warm-up events (HR@10 / NDCG@10 of the "
             f"list each user held before each click)"]
    lines.append(f"{'variant':<10} {'HR@10':>7} {'NDCG@10':>8}  HR@10 per {summary['window']} "
                 "events")
    for name, m in summary["variants"].items():
        if m["hr@10"] is None:
            lines.append(f"{name:<10} {'n/a':>7} {'n/a':>8}  unavailable: "
                         f"{summary['unavailable'][name]}")
            continue
        windows = " ".join(f"{w:.2f}" for w in summary["windows"].get(name, []))
        lines.append(f"{name:<10} {m['hr@10']:>7.4f} {m['ndcg@10']:>8.4f}  {windows}")
    if "recovery" in summary:
        lines.append(f"drift injected at event {summary['drift_at_event']} (horizon "
                     f"{summary['horizon_events']} events)")
        if "detection_delay_events" in summary:
            lines.append(f"  adaptive: detected after {summary['detection_delay_events']} "
                         f"events, {summary['false_alarms']} false alarm(s) before the drift")
        for name, r in summary["recovery"].items():
            state = "recovered" if r["recovered"] else "not recovered (horizon)"
            lines.append(f"  {name:<10} pre-drift HR@10 {r['pre_drift_hr@10']:.4f}, "
                         f"{state} after {r['recovery_events']} events")
        if "recovery_speedup" in summary:
            bound = " (lower bound: frozen never recovers)" \
                if summary["recovery_speedup_lower_bound"] else ""
            lines.append(f"  recovery speed-up adaptive vs frozen: "
                         f"{summary['recovery_speedup']}x{bound}")
    for name, decisions in summary.get("decisions", {}).items():
        for d in decisions:
            extra = d.get("reason") or d.get("model") or d.get("detector") or ""
            lines.append(f"  {name} @{d['index']}: {d['type']} {extra}")
    return "\n".join(lines)


def plot(data: Any, runs: dict[str, Any], window: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    smooth = max(100, window // 2)
    for name, run in runs.items():
        if run.unavailable:
            continue
        x, y = run.trailing_hr(smooth)
        if len(x):
            ax.plot(x, y, label=name, linewidth=1.3)
    if data.drift_at is not None:
        ax.axvline(data.drift_at, color="black", linestyle="--", linewidth=1.2,
                   label="injected drift")
    adaptive = runs.get("adaptive")
    if adaptive is not None:
        kinds = {"drift": ("red", ":", "drift detected"),
                 "live": ("green", "-", "new version live"),
                 "reject": ("grey", "-.", "candidate rejected")}
        for kind, (color, style, label) in kinds.items():
            for j, index in enumerate(m["index"] for m in adaptive.markers if m["type"] == kind):
                ax.axvline(index, color=color, linestyle=style, linewidth=1.0, alpha=0.8,
                           label=label if j == 0 else None)
    ax.set_xlabel("replayed events")
    ax.set_ylabel(f"HR@10 (trailing {smooth} scored clicks)")
    ax.set_title(f"Prequential HR@10 over time: {data.name}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
