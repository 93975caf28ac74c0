"""``streamrec replay`` (prequential evaluation), ``streamrec trainer`` (the retraining loop) and
``streamrec catalog`` (the catalogue service: new items become model versions).

``streamrec replay --dataset ml-100k|synthetic [--seeds 0 1 2] [--json] [--plot out.png]``
prints HR@10 and NDCG@10 per variant (mean ± std over the seeds, each seed's passes run on
``--workers`` processes), overall, on hittable clicks (items new to the user) and over sliding
windows; for the synthetic stream also the drift metrics (detection delay, false alarms over the
whole run, recovery on hittable clicks against co-visitation and the re-ranker alone). With
``--json`` the last line of stdout is one JSON object::

    {"dataset": ..., "seeds": [...], "variants": {name: {"hr@10": {"mean", "std"}, ...}},
     "detection_delay_events": ..., "false_alarms": ..., "recovery_speedup_vs_covisit": ...,
     "targets": {...}, "per_seed": [...]}

Recovery (:mod:`training.replay.report`): a variant's pre-drift HR@10 over the last
``--window`` hittable clicks before the drift; it has recovered at the first event whose
trailing window of ``--window`` hittable clicks lies wholly after the drift and reaches 90% of
that. A variant that never gets there is reported as never within the horizon, not as a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay", help="prequential (test-then-learn) replay of the variants",
        description="Time-ordered test-then-learn replay through the worker's code: HR@10 and "
        "NDCG@10 per variant, overall and over sliding windows.",
    )
    replay.add_argument("--dataset", choices=["ml-100k", "synthetic"], default="synthetic")
    replay.add_argument("--variants", default=",".join(_variants()),
                        help="comma-separated, of " + ", ".join(_all_variants())
                        + " (default: all but biased_mf)")
    replay.add_argument("--json", action="store_true", help="last stdout line: JSON summary")
    replay.add_argument("--plot", metavar="PNG", help="write HR@10 over time per variant")
    replay.add_argument("--window", type=int, default=None,
                        help="sliding window in events (default: 1000 synthetic, 5000 ml-100k)")
    # options left out take the replay section of the settings (`streamrec config`)
    replay.add_argument("--events", type=int, help="synthetic: stream length")
    replay.add_argument("--warm", type=int, help="synthetic: warm-up events")
    replay.add_argument("--drift-at", type=int, help="synthetic: drift event")
    replay.add_argument("--users", type=int, help="synthetic: users")
    replay.add_argument("--items", type=int, help="synthetic: items")
    replay.add_argument("--seeds", type=int, nargs="+",
                        help="seeds to replay (default 0 1 2); the summary is mean ± std")
    replay.add_argument("--workers", type=int,
                        help="processes running the passes (default 2; 1: this process)")
    replay.add_argument("--batch-size", type=int,
                        help="events per engine batch (1: every click sees the latest list)")
    replay.add_argument("--train-epochs", type=int,
                        help="the frozen model's epochs (early stopping may stop it sooner)")
    replay.add_argument("--retrain-every", type=int, default=None,
                        help="adaptive: scheduled retrain every N events (default: 20000 "
                        "synthetic, 5000 ml-100k)")
    replay.add_argument("--retrain-lag", type=int,
                        help="adaptive: events before a promoted version goes live")
    replay.add_argument("--recent-events", type=int,
                        help="adaptive: events a fine-tune trains on")
    replay.add_argument("--min-regime-events", type=int,
                        help="adaptive: after a drift a fine-tune trains on the events since "
                        "it, at least this many (0: always the last --recent-events)")
    replay.add_argument("--finetune-epochs", type=int,
                        help="adaptive: a fine-tune's epochs (early stopping may stop it sooner)")
    replay.add_argument("--no-progress", action="store_true")
    replay.set_defaults(func=run_replay)

    trainer = subparsers.add_parser(
        "trainer", help="the retraining loop: consume model-events, fine-tune, gate, publish",
        description="Consumes drift requests (and a schedule) from model-events, fine-tunes the "
        "live version on recent clicks replayed from Kafka, publishes it only if it beats live "
        "on a recent holdout, and rolls back a promoted version that loses live.",
    )
    # options left out take the trainer section of the settings (`streamrec config`)
    trainer.add_argument("--schedule-s", type=float, help="also retrain every N seconds")
    trainer.add_argument("--cooldown-s", type=float, help="at most one retrain per N seconds")
    trainer.add_argument("--recent-events", type=int)
    trainer.add_argument("--min-regime-events", type=int,
                         help="after a drift, train on the events since it, at least this many")
    trainer.add_argument("--finetune-budget-s", type=float)
    trainer.add_argument("--followups", type=int,
                         help="after a drift's retrain, this many more (on fresher clicks)")
    trainer.add_argument("--followup-every-s", type=float,
                         help="seconds between follow-up retrains (--cooldown-s still holds)")
    trainer.add_argument("--max-retrains", type=int, default=None,
                         help="exit after N retrains")
    trainer.add_argument("--texts", default=None,
                         help="item text: ml-100k or an items JSONL (default: none, so "
                         "candidates are trained without item text)")
    trainer.set_defaults(func=run_trainer)

    catalog = subparsers.add_parser(
        "catalog", help="the catalogue service: new items on `items` become model versions",
        description="Consumes the items topic and publishes the next model version with the "
        "rows of new items (embedded from their text, no retraining). Run exactly one; the "
        "workers only follow versions.",
    )
    catalog.add_argument("--flush-s", type=float, default=None,
                         help="wait after the first new item, so that a burst becomes one "
                         "version (default: the service's)")
    catalog.add_argument("--max-versions", type=int, default=None,
                         help="exit after publishing N versions")
    catalog.set_defaults(func=run_catalog)


def _variants() -> tuple[str, ...]:
    from training.replay.prequential import DEFAULT_VARIANTS

    return DEFAULT_VARIANTS


def _all_variants() -> tuple[str, ...]:
    from training.replay.prequential import VARIANTS

    return VARIANTS


# --- replay -------------------------------------------------------------------------------------
def run_replay(args: argparse.Namespace) -> int:
    from streamrec.cli.config import section_with_options
    from streamrec.core.config import Settings
    from training.replay.prequential import SYNTHETIC_TRAINING, ReplayOptions, ensure_variants
    from training.replay.report import aggregate, format_summary, plot, summarize
    from training.replay.runner import ReplaySpec, run_seeds

    settings = Settings.from_env()
    knobs = section_with_options(settings.replay, args)
    names = ensure_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    synthetic = args.dataset == "synthetic"
    window = knobs.window or (1_000 if synthetic else 5_000)
    workers = min(knobs.workers, len(knobs.seeds) * len(names))
    training = {**(SYNTHETIC_TRAINING if synthetic else {}),
                **{k: v for k, v in (("train_epochs", knobs.train_epochs),
                                     ("train_patience", knobs.train_patience)) if v is not None}}
    options = ReplayOptions(
        batch_size=knobs.batch_size, **training,
        retrain_every=knobs.retrain_every or (20_000 if synthetic else 5_000),
        retrain_lag=knobs.retrain_lag, recent_events=knobs.recent_events,
        min_regime_events=knobs.min_regime_events, finetune_epochs=knobs.finetune_epochs,
        finetune_patience=knobs.finetune_patience,
        progress=not args.no_progress, progress_lines=workers > 1 and not args.no_progress,
    )
    shape = {"events": knobs.events, "warm": knobs.warm, "drift_at": knobs.drift_at,
             "n_users": knobs.users, "n_items": knobs.items} if synthetic else {}
    spec = ReplaySpec(args.dataset, options, shape)
    seeds = list(knobs.seeds)
    runs = run_seeds(spec, seeds, names, workers)
    datas = {seed: spec.data(seed) for seed in seeds}
    summaries = [{"seed": seed, **summarize(datas[seed], runs[seed], window)} for seed in seeds]
    for one in summaries:
        print(f"--- seed {one['seed']}")
        print(format_summary(one))
    summary = aggregate(summaries, seeds)
    print(f"--- {len(seeds)} seed(s)")
    print(format_summary(summary))
    if args.plot:
        plot(datas[seeds[0]], runs[seeds[0]], window, args.plot)
        print(f"plot: {args.plot} (seed {seeds[0]})")
    if args.json:
        print(json.dumps(summary))
    return 0


# --- trainer ------------------------------------------------------------------------------------
def run_trainer(args: argparse.Namespace) -> int:
    from streamrec.cli.config import section_with_options
    from streamrec.core.config import Settings
    from training.fine_tune import FineTuneConfig
    from training.retrain_policy import RetrainPolicy
    from training.trainer import Trainer
    from training.trainer_service import TrainerService

    settings = Settings.from_env().resolved()
    settings.require_kafka()
    knobs = section_with_options(settings.trainer, args)
    texts = _trainer_texts(args.texts)
    trainer = Trainer(
        settings,
        policy=RetrainPolicy(schedule_every=knobs.schedule_s, cooldown=knobs.cooldown_s,
                             followups=knobs.followups, followup_every=knobs.followup_every_s),
        recent_events=knobs.recent_events, min_regime_events=knobs.min_regime_events,
        finetune=FineTuneConfig(time_budget_s=knobs.finetune_budget_s),
        texts=texts,
    )
    asyncio.run(TrainerService(trainer).run(max_retrains=args.max_retrains))
    print(json.dumps({"counters": trainer.counters}))
    return 0


# --- catalogue service ---------------------------------------------------------------------------
def run_catalog(args: argparse.Namespace) -> int:
    from streamrec.core.config import Settings
    from training.catalog_service import CatalogService

    settings = Settings.from_env().resolved()
    settings.require_kafka()
    options = {} if args.flush_s is None else {"flush_s": args.flush_s}
    service = CatalogService(settings, **options)
    asyncio.run(service.run(max_versions=args.max_versions))
    print(json.dumps({"published": service.published}))
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
