"""The replay's report: the summary per variant, the drift metrics, the seeds' aggregate, plot.

Hittable clicks: a click on an item its user already clicked can never be a hit (every list
excludes seen items), and such repeats are far more common before the synthetic drift than
after it (old items vs new ones), so the drift metrics count only *hittable* clicks
(:attr:`~training.replay.data.ReplayData.hittable`).

Recovery: a variant's pre-drift HR@10 is its HR@10 over the last ``window`` hittable scored
clicks before the drift; it has recovered at the first event whose trailing window of
``window`` hittable scored clicks lies wholly after the drift and reaches
:data:`RECOVERY_SHARE` of that. A variant that never gets there (the frozen model: the new
items are not in its vocabulary) is reported as never recovering within the horizon, with no
number; the adaptive loop is compared with the strongest baselines that do recover,
co-visitation alone and the re-ranker alone (``recovery_speedup_vs_covisit``: covisit's
recovery events / the adaptive loop's).

Detection: every alarm of the adaptive loop's detector over the whole run counts. The first
alarm at or after the drift is its detection (``detection_delay_events``); every other alarm,
before the drift or after the detection, is a false alarm.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from training.replay.prequential import K

RECOVERY_SHARE = 0.9
BASELINES = ("covisit", "reranked")  # the strongest baselines that recover by themselves
# the targets (benchmarks): detection, false alarms, recovery, ML-100K gain
TARGET_DETECTION_EVENTS = 500
TARGET_SPEEDUP_VS_COVISIT = 2.0
TARGET_ML_GAIN_VS_FROZEN = 1.2


def summarize(data: Any, runs: dict[str, Any], window: int) -> dict[str, Any]:
    total = len(data.stream)
    hittable = data.hittable
    out: dict[str, Any] = {
        "dataset": data.name, "warm_events": len(data.warm), "replayed_events": total,
        "hittable_share": round(float(hittable.mean()), 4) if total else 0.0,
        "window": window, "variants": {}, "windows": {}, "unavailable": {}, "seconds": {},
        "decisions": {}, "counters": {}, "train": {},
    }
    for name, run in runs.items():
        if run.unavailable:
            out["variants"][name] = {"hr@10": None, "ndcg@10": None}
            out["unavailable"][name] = run.unavailable
            continue
        m = run.metrics()
        h = run.metrics(mask=hittable)
        out["variants"][name] = {"hr@10": round(m["hr@10"], 4), "ndcg@10": round(m["ndcg@10"], 4),
                                 "n": m["n"], "hr@10_hittable": round(h["hr@10"], 4),
                                 "ndcg@10_hittable": round(h["ndcg@10"], 4), "n_hittable": h["n"]}
        out["windows"][name] = [round(w["hr@10"], 4) for w in run.windows(window, total)]
        out["seconds"][name] = round(run.seconds, 1)
        if run.counters:
            out["counters"][name] = dict(run.counters)
        if run.train:
            out["train"][name] = dict(run.train)
        if run.markers:
            out["decisions"][name] = [
                {k: v for k, v in marker.items() if k in (
                    "type", "index", "reason", "promote", "candidate", "live", "model",
                    "detector", "seconds", "metric", "window", "epochs", "stop_reason")}
                for marker in run.markers
            ]
    if data.drift_at is not None:
        out.update(drift_metrics(data, runs, window))
    return out


def drift_metrics(data: Any, runs: dict[str, Any], window: int) -> dict[str, Any]:
    """Detection delay and false alarms (adaptive), recovery per variant on hittable clicks,
    and the adaptive loop's speed-up against the baselines that recover."""
    at, total = data.drift_at, len(data.stream)
    horizon = total - at
    out: dict[str, Any] = {"drift_at_event": at, "horizon_events": horizon}
    adaptive = runs.get("adaptive")
    if adaptive is not None and not adaptive.unavailable:
        alarms = [m["index"] for m in adaptive.markers if m["type"] == "drift"]
        after = [i for i in alarms if i >= at]
        out["alarms"] = alarms
        out["detection_delay_events"] = after[0] - at if after else None
        out["false_alarms"] = len(alarms) - (1 if after else 0)
    recovery: dict[str, Any] = {}
    for name, run in runs.items():
        if run.unavailable:
            continue
        pre = pre_drift_hit_rate(run, data.hittable, at, window)
        events = recovery_events(run, data.hittable, at, window, RECOVERY_SHARE * pre)
        recovery[name] = {"pre_drift_hr@10": round(pre, 4), "recovery_events": events,
                          "recovered": events is not None}
        if events is None:
            recovery[name]["note"] = f"never within the horizon ({horizon} events)"
    out["recovery"] = recovery
    for base in BASELINES:
        out.update(speedup(recovery, base))
    return out


def speedup(recovery: dict[str, Any], base: str) -> dict[str, Any]:
    """``recovery_speedup_vs_<base>``: base's recovery events / the adaptive loop's; None
    (with a note) when either never recovers within the horizon."""
    key = f"recovery_speedup_vs_{base}"
    adaptive, other = recovery.get("adaptive"), recovery.get(base)
    if adaptive is None or other is None:
        return {}
    if adaptive["recovery_events"] is None or other["recovery_events"] is None:
        who = "adaptive" if adaptive["recovery_events"] is None else base
        return {key: None, f"{key}_note": f"{who} never recovers within the horizon"}
    return {key: round(other["recovery_events"] / max(1, adaptive["recovery_events"]), 2)}


def _hittable_hits(run: Any, hittable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stream positions, 0/1 hits) of the run's scored clicks that were hittable."""
    positions = np.asarray(run.positions, dtype=np.int64)
    keep = hittable[positions] if len(positions) else np.zeros(0, dtype=bool)
    hits = (np.asarray(run.ranks, dtype=np.float64) < K).astype(np.float64)
    return positions[keep], hits[keep]


def pre_drift_hit_rate(run: Any, hittable: np.ndarray, at: int, window: int) -> float:
    """HR@10 over the last ``window`` hittable scored clicks before the drift."""
    positions, hits = _hittable_hits(run, hittable)
    before = hits[positions < at][-window:]
    return float(before.mean()) if len(before) else 0.0


def recovery_events(run: Any, hittable: np.ndarray, at: int, window: int,
                    target: float) -> int | None:
    """Events from the drift to the end of the first trailing window of ``window`` hittable
    scored clicks, wholly after the drift, whose HR@10 reaches ``target``."""
    positions, hits = _hittable_hits(run, hittable)
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


# --- several seeds ------------------------------------------------------------------------------
def mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (0 for one value) of ``values``."""
    if not values:
        return {"mean": None, "std": None}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "std": round(std, 4)}


def aggregate(summaries: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """The seeds' summaries in one: each metric's mean ± std over the seeds, the per-seed
    values, the drift metrics' means (the keys the issue names) and the targets met or not."""
    first = summaries[0]
    out: dict[str, Any] = {
        "dataset": first["dataset"], "seeds": seeds, "warm_events": first["warm_events"],
        "replayed_events": first["replayed_events"], "window": first["window"],
        "variants": {}, "per_seed": summaries,
    }
    for name in first["variants"]:
        rows = [s["variants"][name] for s in summaries]
        if any(r["hr@10"] is None for r in rows):
            out["variants"][name] = {"hr@10": None, "ndcg@10": None}
            continue
        out["variants"][name] = {
            metric: mean_std([r[metric] for r in rows])
            for metric in ("hr@10", "ndcg@10", "hr@10_hittable", "ndcg@10_hittable")
        }
    if "recovery" in first:
        out.update(_aggregate_drift(summaries))
    elif first["dataset"] == "ml-100k":
        out.update(_aggregate_gain(out["variants"], summaries))
    return out


def _per_seed(summaries: list[dict[str, Any]], key: str) -> list[Any]:
    return [s.get(key) for s in summaries]


def _aggregate_drift(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"drift_at_event": summaries[0]["drift_at_event"],
                           "horizon_events": summaries[0]["horizon_events"]}
    horizon = out["horizon_events"]
    targets: dict[str, Any] = {}
    if "detection_delay_events" in summaries[0]:
        delays = _per_seed(summaries, "detection_delay_events")
        alarms = _per_seed(summaries, "false_alarms")
        detected = [d for d in delays if d is not None]
        out["detection_delay_events"] = mean_std(detected)["mean"]
        out["detection_delay_events_std"] = mean_std(detected)["std"]
        out["detection_delay_events_per_seed"] = delays
        out["false_alarms"] = mean_std(alarms)["mean"]
        out["false_alarms_per_seed"] = alarms
        out["false_alarms_total"] = sum(alarms)
        targets["detection_within_500_events"] = {
            "target": f"<= {TARGET_DETECTION_EVENTS} events in every seed",
            "met": len(detected) == len(delays)
            and max(detected) <= TARGET_DETECTION_EVENTS}
        targets["no_false_alarms"] = {"target": "0 false alarms over the run in every seed",
                                      "met": sum(alarms) == 0}
    recovery: dict[str, Any] = {}
    for name in summaries[0]["recovery"]:
        events = [s["recovery"][name]["recovery_events"] for s in summaries]
        done = [e for e in events if e is not None]
        row: dict[str, Any] = {"recovery_events": mean_std(done) if len(done) == len(events)
                               else None, "per_seed": events,
                               "pre_drift_hr@10": mean_std([s["recovery"][name]["pre_drift_hr@10"]
                                                            for s in summaries])}
        if len(done) < len(events):
            row["note"] = (f"never within the horizon ({horizon} events) in "
                           f"{len(events) - len(done)} of {len(events)} seeds")
        recovery[name] = row
    out["recovery"] = recovery
    for base in BASELINES:
        key = f"recovery_speedup_vs_{base}"
        values = _per_seed(summaries, key)
        if not any(key in s for s in summaries):
            continue
        known = [v for v in values if v is not None]
        out[key] = mean_std(known)["mean"] if len(known) == len(values) else None
        out[f"{key}_std"] = mean_std(known)["std"] if len(known) == len(values) else None
        out[f"{key}_per_seed"] = values
        if len(known) < len(values):
            out[f"{key}_note"] = "some seed never recovers within the horizon (per_seed: null)"
    if "recovery_speedup_vs_covisit" in out:
        mean = out["recovery_speedup_vs_covisit"]
        targets["recovery_2x_faster_than_covisit"] = {
            "target": f">= {TARGET_SPEEDUP_VS_COVISIT}x (mean over the seeds)",
            "met": mean is not None and mean >= TARGET_SPEEDUP_VS_COVISIT}
    out["targets"] = targets
    return out


def _aggregate_gain(variants: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    adaptive, frozen = variants.get("adaptive"), variants.get("frozen")
    if not adaptive or not frozen or adaptive["hr@10"] is None or frozen["hr@10"] is None:
        return {}
    per_seed = [round(s["variants"]["adaptive"]["hr@10"] / s["variants"]["frozen"]["hr@10"], 3)
                for s in summaries]
    gain = mean_std(per_seed)
    return {"adaptive_vs_frozen_hr@10": gain["mean"], "adaptive_vs_frozen_hr@10_std": gain["std"],
            "adaptive_vs_frozen_hr@10_per_seed": per_seed,
            "targets": {"adaptive_1.2x_frozen": {
                "target": f">= {TARGET_ML_GAIN_VS_FROZEN}x HR@10 (mean over the seeds)",
                "met": gain["mean"] is not None and gain["mean"] >= TARGET_ML_GAIN_VS_FROZEN}}}


def format_summary(summary: dict[str, Any]) -> str:
    """One seed's summary, or the seeds' aggregate (``per_seed`` present), as text."""
    if "per_seed" in summary:
        return format_aggregate(summary)
    lines = [f"prequential replay of {summary['dataset']}: {summary['replayed_events']} events "
             f"scored after {summary['warm_events']} warm-up events (HR@10 / NDCG@10 of the "
             f"list each user held before each click; hittable: clicks on items new to the "
             f"user, {summary['hittable_share']:.0%} of the stream)"]
    lines.append(f"{'variant':<10} {'HR@10':>7} {'NDCG@10':>8} {'HR@10 h.':>8}  HR@10 per "
                 f"{summary['window']} events")
    for name, m in summary["variants"].items():
        if m["hr@10"] is None:
            lines.append(f"{name:<10} {'n/a':>7} {'n/a':>8} {'n/a':>8}  unavailable: "
                         f"{summary['unavailable'][name]}")
            continue
        windows = " ".join(f"{w:.2f}" for w in summary["windows"].get(name, []))
        lines.append(f"{name:<10} {m['hr@10']:>7.4f} {m['ndcg@10']:>8.4f} "
                     f"{m['hr@10_hittable']:>8.4f}  {windows}")
    if "recovery" in summary:
        lines.append(f"drift injected at event {summary['drift_at_event']} (horizon "
                     f"{summary['horizon_events']} events)")
        if "detection_delay_events" in summary:
            lines.append(f"  adaptive: detected after {summary['detection_delay_events']} "
                         f"events, {summary['false_alarms']} false alarm(s) over the run "
                         f"(alarms at {summary['alarms']})")
        for name, r in summary["recovery"].items():
            state = (f"recovered after {r['recovery_events']} events" if r["recovered"]
                     else r["note"])
            lines.append(f"  {name:<10} pre-drift hittable HR@10 {r['pre_drift_hr@10']:.4f}, "
                         f"{state}")
        for base in BASELINES:
            key = f"recovery_speedup_vs_{base}"
            if key in summary:
                value = summary[key]
                lines.append(f"  recovery speed-up adaptive vs {base}: "
                             + (f"{value}x" if value is not None else summary[f"{key}_note"]))
    for name, decisions in summary.get("decisions", {}).items():
        for d in decisions:
            extra = d.get("reason") or d.get("model") or d.get("detector") or ""
            lines.append(f"  {name} @{d['index']}: {d['type']} {extra}")
    return "\n".join(lines)


def _pm(value: dict[str, Any] | None, digits: int = 4) -> str:
    if value is None or value["mean"] is None:
        return "n/a"
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def format_aggregate(summary: dict[str, Any]) -> str:
    seeds = summary["seeds"]
    lines = [f"prequential replay of {summary['dataset']}, seeds {seeds}: mean ± std over the "
             f"seeds ({summary['replayed_events']} events scored after "
             f"{summary['warm_events']} warm-up events)"]
    lines.append(f"{'variant':<10} {'HR@10':>16} {'NDCG@10':>16} {'HR@10 hittable':>16}")
    for name, m in summary["variants"].items():
        if m["hr@10"] is None:
            lines.append(f"{name:<10} unavailable")
            continue
        lines.append(f"{name:<10} {_pm(m['hr@10']):>16} {_pm(m['ndcg@10']):>16} "
                     f"{_pm(m['hr@10_hittable']):>16}")
    if "recovery" in summary:
        if "detection_delay_events" in summary:
            lines.append(f"detection delay {summary['detection_delay_events']} ± "
                         f"{summary['detection_delay_events_std']} events (per seed "
                         f"{summary['detection_delay_events_per_seed']}), false alarms "
                         f"{summary['false_alarms']} per seed "
                         f"({summary['false_alarms_per_seed']})")
        for name, r in summary["recovery"].items():
            state = _pm(r["recovery_events"], 0) + " events" if r["recovery_events"] else \
                r.get("note", "n/a")
            lines.append(f"  {name:<10} pre-drift hittable HR@10 {_pm(r['pre_drift_hr@10'])}, "
                         f"recovery {state} (per seed {r['per_seed']})")
        for base in BASELINES:
            key = f"recovery_speedup_vs_{base}"
            if key in summary:
                value = summary[key]
                text = (f"{value}x ± {summary[f'{key}_std']}" if value is not None
                        else summary.get(f"{key}_note", "n/a"))
                lines.append(f"  recovery speed-up adaptive vs {base}: {text} (per seed "
                             f"{summary[f'{key}_per_seed']})")
    if "adaptive_vs_frozen_hr@10" in summary:
        lines.append(f"adaptive / frozen HR@10: {summary['adaptive_vs_frozen_hr@10']}x ± "
                     f"{summary['adaptive_vs_frozen_hr@10_std']} (per seed "
                     f"{summary['adaptive_vs_frozen_hr@10_per_seed']})")
    for name, target in summary.get("targets", {}).items():
        lines.append(f"target {name} ({target['target']}): "
                     f"{'met' if target['met'] else 'NOT met'}")
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
        x, y = run.trailing_hr(smooth, data.hittable)
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
    ax.set_ylabel(f"HR@10 (trailing {smooth} hittable scored clicks)")
    ax.set_title(f"Prequential HR@10 over time: {data.name}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
