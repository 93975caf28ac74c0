"""``streamrec train`` and ``streamrec eval`` (heavy imports inside the functions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamrec.core.atomic import write_json_atomic
from streamrec.core.config import Settings

TABLE_COLUMNS = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "ndcg@10_all", "coverage",
                 "cold_hr@10", "cold_hr@10_calibrated", "cold_hr@10_among_cold",
                 "hr@10_cold_test")


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train", help="fine-tune the sequence model, save a checkpoint, export a version",
        description="Train the SASRec-style model (text+ID item vectors) with full-softmax "
        "cross-entropy, early stopping on validation NDCG@10; write the checkpoint and metrics "
        "under artifacts/ and publish the next model_repository version.",
    )
    _common(train)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--variant", choices=["text+id", "id"], default="text+id",
                       help="item representation (default text+id)")
    train.add_argument("--no-export", action="store_true", help="do not publish a version")
    train.add_argument("--init", type=Path, default=None,
                       help="warm-start from this checkpoint (rows matched by item id)")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="evaluate checkpoints and baselines (full ranking, leave-one-out)",
        description="Evaluate the model, the ID-only transformer and the baselines in one "
        "harness, mean ± std over the seeds. Missing checkpoints are trained once and saved; "
        "existing ones (same config and data: the hash in the name) are reused.",
    )
    _common(evaluate)
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                          help="one training per seed and model (default 0 1 2)")
    evaluate.add_argument("--jobs", type=int, default=None,
                          help="trainings run side by side, one thread each "
                          "(default min(2, cores))")
    evaluate.add_argument("--cold-share", type=float, default=0.15,
                          help="share of items held out of training for cold start")
    evaluate.set_defaults(func=run_eval)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="ml-100k",
                        help="ml-100k, kafka (replay the clicks topic) or a JSONL click log")
    parser.add_argument("--items", type=Path, default=None,
                        help="JSONL catalogue (items contract) giving item text for click logs")
    parser.add_argument("--max-users", type=int, default=None, help="train on the first N users")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="opt-in wall-clock limit per training in seconds (default none: "
                        "epochs and early stopping decide)")
    parser.add_argument("--small", action="store_true",
                        help="a tiny model (32-d, 1 layer) for smoke tests and CI")
    parser.add_argument("--json", action="store_true", help="last stdout line is JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.epochs is not None:
        out["epochs"] = args.epochs
    if args.time_budget is not None:
        out["time_budget_s"] = args.time_budget
    if args.small:
        out.update(dim=32, layers=1, heads=1)
    return out


def run_train(args: argparse.Namespace) -> int:
    from training.data import LeaveOneOut
    from training.pipeline import (
        checkpoint_path,
        load_dataset,
        run_fingerprint,
        text_matrix,
        train_variant,
        variant_config,
    )

    settings = Settings.from_env()
    dataset = load_dataset(args.dataset, settings, items=args.items, max_users=args.max_users)
    split = LeaveOneOut.from_interactions(dataset.interactions, dataset.catalog)
    vectors = text_matrix(dataset, split.vocab.items, settings) if args.variant != "id" else None
    if args.small:  # a tiny model never replaces the full one's checkpoint
        dataset.tag += "-small"
    overrides = _overrides(args)
    config = variant_config(args.variant, args.seed, vectors, overrides)
    path = checkpoint_path(settings, dataset.tag, args.variant, args.seed,
                           run_fingerprint(config, split, vectors))
    init = None
    if args.init is not None:
        from training.train import warm_start_state

        init = warm_start_state(args.init, split.vocab)
    metrics = train_variant(dataset, split, vectors, args.variant, args.seed, path,
                            overrides=overrides, progress=not args.no_progress, init_state=init)
    saved = json.loads(path.with_suffix(".json").read_text())
    report: dict[str, Any] = {
        "checkpoint": str(path), "metrics": metrics, "data": dataset.data_range(),
        "training": {k: saved[k] for k in ("stop_reason", "epochs_run", "best_epoch", "seconds")},
    }
    if not args.no_export:
        from streamrec.core.versions import latest_version
        from training.export import publish_version

        repo = settings.triton.model_repository
        parent = latest_version(repo / settings.triton.model_name)
        version = publish_version(
            path, repo, settings.triton.model_name, metrics=metrics, parent_version=parent,
        )
        report["version"] = version
        report["version_dir"] = str(repo / settings.triton.model_name / str(version))
    print(format_table({f"{args.variant} seed {args.seed}": metrics}))
    print(f"{report['training']['epochs_run']} epochs (best {report['training']['best_epoch']}), "
          f"stopped by {report['training']['stop_reason']}")
    if "version" in report:
        print(f"published {report['version_dir']}")
    if args.json:
        print(json.dumps(report))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from training.benchmark import run_benchmark

    settings = Settings.from_env()
    result = run_benchmark(
        args.dataset, settings, seeds=args.seeds, items=args.items, max_users=args.max_users,
        cold_share=args.cold_share, overrides=_overrides(args), progress=not args.no_progress,
        tag_suffix="-small" if args.small else "", jobs=args.jobs,
    )
    report = settings.artifacts / "eval" / f"{result['dataset']['dataset']}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(report, result)
    rows = {"sasrec text+id (model)": result["model"]}
    if result["id_only"] is not None:
        rows["sasrec id-only"] = result["id_only"]
    rows.update(result["baselines"])
    print(format_table(rows))
    for run in result["training"]:
        print(f"{run['variant']} seed {run['seed']}: {run['epochs_run']} epochs, best "
              f"{run['best_epoch']}, stopped by {run['stop_reason']}")
    for name, target in result["targets"].items():
        print(f"target {name}: {'met' if target['met'] else 'NOT met'}")
    print(f"wall time {result['wall_s']:.0f} s on {result['machine']['cpu']} "
          f"({result['machine']['cores']} cores, {result['machine']['jobs']} jobs)")
    if args.json:
        print(json.dumps(result))
    return 0


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A plain text table; a {"mean", "std"} cell prints as ``m±s``."""
    columns = [c for c in TABLE_COLUMNS if any(c in r for r in rows.values())]
    width = max(12, *(len(name) for name in rows))
    header = f"{'model':<{width}}  " + "  ".join(f"{c:>15}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, metrics in rows.items():
        cells = [f"{_cell(metrics.get(c)):>15}" for c in columns]
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['mean']:.4f}±{value['std']:.4f}"
    return f"{value:.4f}"
