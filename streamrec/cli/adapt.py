"""``streamrec replay`` (prequential evaluation) and ``streamrec trainer`` (the retraining loop).

``streamrec replay --dataset ml-100k|synthetic [--json] [--plot out.png]`` prints HR@10 and
NDCG@10 per variant, overall and over sliding windows of the replayed stream; for the
synthetic stream also the drift metrics (detection delay, false alarms, recovery). With
``--json`` the last line of stdout is one JSON object::

    {"dataset": ..., "variants": {name: {"hr@10": ..., "ndcg@10": ...}},
     "detection_delay_events": ..., "recovery_speedup": ..., ...}

Recovery: a variant's pre-drift HR@10 is measured over the ``--window`` events before the
drift; it has recovered at the first event whose trailing window of ``--window`` scored clicks
lies wholly after the drift and reaches 90% of that. A variant that never recovers gets the
horizon (the events from the drift to the end) and the speed-up is marked a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import numpy as np

RECOVERY_SHARE = 0.9


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay", help="prequential (test-then-learn) replay of the variants",
        description="Time-ordered test-then-learn replay through the worker's code: HR@10 and "
        "NDCG@10 per variant, overall and over sliding windows.",
    )
    replay.add_argument("--dataset", choices=["ml-100k", "synthetic"], default="synthetic")
    replay.add_argument("--variants", default=",".join(_variants()),
                        help="comma-separated subset (default: all)")
    replay.add_argument("--json", action="store_true", help="last stdout line: JSON summary")
    replay.add_argument("--plot", metavar="PNG", help="write HR@10 over time per variant")
    replay.add_argument("--window", type=int, default=None,
                        help="sliding window in events (default: 1000 synthetic, 5000 ml-100k)")
    replay.add_argument("--events", type=int, default=40_000, help="synthetic: stream length")
    replay.add_argument("--warm", type=int, default=15_000, help="synthetic: warm-up events")
    replay.add_argument("--drift-at", type=int, default=25_000, help="synthetic: drift event")
    replay.add_argument("--users", type=int, default=2_000, help="synthetic: users")
    replay.add_argument("--items", type=int, default=1_000, help="synthetic: items")
    replay.add_argument("--seed", type=int, default=0)
    replay.add_argument("--batch-size", type=int, default=1,
                        help="events per engine batch (1: every click sees the latest list)")
    replay.add_argument("--train-budget-s", type=float, default=240.0,
                        help="time budget of the frozen model's training (cached)")
    replay.add_argument("--retrain-every", type=int, default=None,
                        help="adaptive: scheduled retrain every N events (default: 10000 "
                        "synthetic, 5000 ml-100k)")
    replay.add_argument("--retrain-lag", type=int, default=500,
                        help="adaptive: events before a promoted version goes live")
    replay.add_argument("--recent-events", type=int, default=20_000,
                        help="adaptive: events a fine-tune trains on")
    replay.add_argument("--min-regime-events", type=int, default=2_000,
                        help="adaptive: after a drift a fine-tune trains on the events since "
                        "it, at least this many (0: always the last --recent-events)")
    replay.add_argument("--finetune-budget-s", type=float, default=60.0)
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(func=run_replay)

    trainer = subparsers.add_parser(
        "trainer", help="the retraining loop: consume model-events, fine-tune, gate, publish",
        description="Consumes drift requests (and a schedule) from model-events, fine-tunes the "
        "live version on recent clicks replayed from Kafka, publishes it only if it beats live "
        "on a recent holdout, and rolls back a promoted version that loses live.",
    )
    trainer.add_argument("--schedule-s", type=float, default=None,
                         help="also retrain every N seconds")
    trainer.add_argument("--cooldown-s", type=float, default=600.0,
                         help="at most one retrain per N seconds")
    trainer.add_argument("--recent-events", type=int, default=50_000)
    trainer.add_argument("--min-regime-events", type=int, default=2_000,
                         help="after a drift, train on the events since it, at least this many")
    trainer.add_argument("--finetune-budget-s", type=float, default=120.0)
    trainer.add_argument("--max-retrains", type=int, default=None,
                         help="exit after N retrains")
    trainer.add_argument("--texts", default=None,
                         help="item text: ml-100k or an items JSONL (default: the catalogue "
                         "in Redis)")
    trainer.set_defaults(func=run_trainer)


def _variants() -> tuple[str, ...]:
    from training.replay import VARIANTS

    return VARIANTS


# --- replay -------------------------------------------------------------------------------------
def run_replay(args: argparse.Namespace) -> int:
    from training.replay import (
        Replayer,
        ReplayOptions,
        ensure_variants,
        movielens_data,
        synthetic_data,
    )

    names = ensure_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    synthetic = args.dataset == "synthetic"
    if synthetic:
        data = synthetic_data(events=args.events, warm=args.warm, drift_at=args.drift_at,
                              seed=args.seed, n_users=args.users, n_items=args.items)
    else:
        data = movielens_data()
    window = args.window or (1_000 if synthetic else 5_000)
    options = ReplayOptions(
        batch_size=args.batch_size, train_budget_s=args.train_budget_s, seed=args.seed,
        retrain_every=args.retrain_every or (10_000 if synthetic else 5_000),
        retrain_lag=args.retrain_lag, recent_events=args.recent_events,
        min_regime_events=args.min_regime_events, finetune_budget_s=args.finetune_budget_s,
        progress=not args.no_progress,
    )
    replayer = Replayer(data, options)
    runs = {}
    for name in names:
        runs[name] = replayer.run(name)
        print(f"{name}: {runs[name].seconds:.0f} s", file=sys.stderr, flush=True)
    summary = summarize(data, runs, window)
    print(format_summary(summary))
    if args.plot:
        plot(data, runs, window, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        print(json.dumps(summary))
    return 0


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
    hits = (np.asarray(run.ranks) < 10).astype(np.float64)
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


# --- trainer ------------------------------------------------------------------------------------
def run_trainer(args: argparse.Namespace) -> int:
    from streamrec.core.config import Settings
    from training.retrain import FineTuneConfig, RetrainPolicy, TrainerService

    settings = Settings.from_env().resolved()
    settings.require_kafka()
    texts = _trainer_texts(args.texts)
    service = TrainerService(
        settings,
        policy=RetrainPolicy(schedule_every=args.schedule_s, cooldown=args.cooldown_s),
        recent_events=args.recent_events, min_regime_events=args.min_regime_events,
        finetune=FineTuneConfig(time_budget_s=args.finetune_budget_s),
        texts=texts,
    )
    asyncio.run(service.run(max_retrains=args.max_retrains))
    print(json.dumps({"counters": service.counters}))
    return 0


def _trainer_texts(source: str | None) -> dict[str, str] | None:
    if source is None:
        return None
    if source == "ml-100k":
        from training.data import movielens_catalog

        return {c.item_id: c.text for c in movielens_catalog()}
    from pathlib import Path

    from streamrec.core.events import CatalogItem, parse_item
    from training.pipeline import item_text

    out = {}
    for line in Path(source).read_bytes().splitlines():
        item = parse_item(line.strip())
        if isinstance(item, CatalogItem):
            out[item.item_id] = item_text(item.title, item.text, item.categories)
    return out
