"""``streamrec bench inference`` and ``streamrec model list|pin|unpin|rollback|prune``.

Pinning writes ``<model_repository>/<model>.pin.json``; every worker's client reads it within
half a second and switches version and vocabulary in one step. Triton keeps the two newest
versions loaded, so pinning either is immediate. ``rollback`` goes back to the newest version
with older weights (catalogue refreshes and rollback copies keep their parent's weights); when
that version is older than the two Triton keeps, it is republished as a new version (same files,
model card "rollback") so that Triton loads it in poll mode, and pinned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from streamrec.core import versions
from streamrec.core.config import Settings, UserError
from streamrec.core.model_card import read_model_card


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    inference = bench_sub.add_parser(
        "inference", help="in-process onnxruntime vs Triton gRPC, batch 1/16/64 x concurrency "
                          "1/8/32 (starts its own Triton)")
    inference.add_argument("--json", action="store_true", help="machine-readable output")
    inference.add_argument("--duration", type=float, default=2.0, help="seconds per case")
    inference.add_argument("--batches", default="1,16,64")
    inference.add_argument("--concurrency", default="1,8,32")
    inference.add_argument("--threads", type=int, default=1,
                           help="onnxruntime intra-op threads in process")
    inference.add_argument("--exclude-width", type=int, default=None,
                           help="excluded items per sequence (default: the sequence's own; "
                                "the worker sends the seen-set, up to engine.seen_capacity)")
    inference.set_defaults(func=cmd_bench_inference)
    rerank = bench_sub.add_parser(
        "rerank", help="the River re-ranker's cost per list, alone and with the feedback "
                       "click learned")
    rerank.add_argument("--json", action="store_true", help="machine-readable output")
    rerank.add_argument("--lists", type=int, default=500, help="candidate lists to time")
    rerank.add_argument("--seed", type=int, default=0)
    rerank.set_defaults(func=cmd_bench_rerank)
    e2e = bench_sub.add_parser(
        "e2e", help="the worker against a plain Faust agent through the real broker, Redis and "
                    "Triton: rates, latency, CPU per event per process (starts its own servers)")
    e2e.add_argument("--variants", default="faust-baseline,worker-no-model,worker",
                     help="comma-separated: faust-baseline, worker-no-model, worker; "
                     "NAME:memory or NAME:rocksdb names the user-state store")
    e2e.add_argument("--rate", type=float, default=500.0, help="offered events per second")
    e2e.add_argument("--duration", type=float, default=10.0,
                     help="seconds measured per rate (after the warm-up)")
    e2e.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    e2e.add_argument("--max", action="store_true",
                     help="search the highest rate sustained with p99 <= --p99-ms")
    e2e.add_argument("--p99-ms", type=float, default=50.0)
    e2e.add_argument("--start-rate", type=float, default=200.0, help="--max: first rate tried")
    e2e.add_argument("--triton-url", default=None,
                     help="gRPC host:port of an external (e.g. GPU) Triton for `worker`")
    e2e.add_argument("--workers", type=int, default=1,
                     help="worker processes per worker variant, one consumer group")
    e2e.add_argument("--json", action="store_true", help="a JSON object as the last line")
    e2e.add_argument("--plot", type=Path, default=None, help="latency vs offered rate (PNG)")
    e2e.set_defaults(func=cmd_bench_e2e)
    drift = bench_sub.add_parser(
        "drift", help="an abrupt drift to the first recommendation of the new model version, "
                      "in wall-clock, on the embedded stack with the real trainer (starts its "
                      "own servers)")
    drift.add_argument("--rate", type=float, default=50.0,
                       help="clicks per second, before and after the drift")
    drift.add_argument("--warm-events", type=int, default=10_000,
                       help="pre-drift clicks the first version is trained on")
    drift.add_argument("--live-events", type=int, default=3_000,
                       help="pre-drift clicks produced live before the drift")
    drift.add_argument("--users", type=int, default=500)
    drift.add_argument("--items", type=int, default=1_000)
    drift.add_argument("--seed", type=int, default=0)
    drift.add_argument("--bootstrap-epochs", type=int, default=10,
                       help="epochs (at most) of the first version's training")
    drift.add_argument("--timeout", type=float, default=600.0,
                       help="seconds after the drift to wait for the new version")
    drift.add_argument("--target", type=float, default=300.0, help="seconds (the report's verdict)")
    drift.add_argument("--json", action="store_true", help="a JSON object as the last line")
    drift.set_defaults(func=cmd_bench_drift)

    model = sub.add_parser("model", help="list, pin, unpin or roll back model versions")
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    listing = model_sub.add_parser("list", help="published versions, Triton state, the pin")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_model_list)
    pin = model_sub.add_parser("pin", help="make every worker use version N")
    pin.add_argument("version", type=int)
    pin.add_argument("--reason", default="pinned by operator")
    pin.set_defaults(func=cmd_model_pin)
    unpin = model_sub.add_parser("unpin", help="follow the newest READY version again")
    unpin.set_defaults(func=cmd_model_unpin)
    rollback = model_sub.add_parser("rollback", help="go back to the previous model weights")
    rollback.set_defaults(func=cmd_model_rollback)
    prune = model_sub.add_parser(
        "prune", help="delete old versions: keep the live, the pinned, rollback's target and "
                      "the newest N (triton.keep_versions)")
    prune.add_argument("--keep", type=int, default=None,
                       help="newest versions to keep (default: triton.keep_versions)")
    prune.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    prune.add_argument("--json", action="store_true")
    prune.set_defaults(func=cmd_model_prune)
    bootstrap = model_sub.add_parser(
        "bootstrap", help="publish a small first model when the repository has none (needs the "
                          "train extra; docker compose runs it before Triton)")
    bootstrap.set_defaults(func=cmd_model_bootstrap)


# --- bench -------------------------------------------------------------------------------------
def cmd_bench_inference(args: argparse.Namespace) -> int:
    from inference.bench import format_table, run_benchmark

    settings = Settings.from_env()

    def progress(line: str) -> None:
        if not args.json:
            print(f"  running {line} ...", file=sys.stderr, flush=True)

    report = run_benchmark(
        settings.triton.model_repository, settings.triton.model_name, args.duration,
        _ints(args.batches), _ints(args.concurrency), args.threads, progress,
        args.exclude_width,
    )
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def cmd_bench_rerank(args: argparse.Namespace) -> int:
    from streams.rerank.bench import format_table, run_benchmark

    if args.lists < 1:
        raise UserError("--lists must be at least 1")

    def progress(line: str) -> None:
        if not args.json:
            print(f"  {line}", file=sys.stderr, flush=True)

    report = run_benchmark(args.lists, args.seed, progress=progress)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0 if report["order_mismatches"] == 0 else 1


def cmd_bench_e2e(args: argparse.Namespace) -> int:
    from streamrec.cli.bench_e2e import BenchOptions, format_table, plot, run_bench

    options = BenchOptions(
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        rate=args.rate, duration_s=args.duration, warmup_s=args.warmup, search=args.max,
        p99_ms=args.p99_ms, start_rate=args.start_rate, triton_url=args.triton_url,
        workers=args.workers,
    )
    if options.rate <= 0 or options.duration_s <= 0 or options.warmup_s < 0:
        raise UserError("--rate and --duration must be positive, --warmup not negative")

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    report = run_bench(options, progress)
    if args.plot is not None:
        plot(report, args.plot)
        progress(f"plot written to {args.plot}")
    print(json.dumps(report) if args.json else format_table(report))
    return 0 if all(v.get("answered") for v in report["variants"].values()) else 1


def cmd_bench_drift(args: argparse.Namespace) -> int:
    from streamrec.cli.bench_drift import DriftBenchOptions, format_table, run_drift_bench

    options = DriftBenchOptions(
        rate=args.rate, warm_events=args.warm_events, live_events=args.live_events,
        users=args.users, items=args.items, seed=args.seed,
        bootstrap_epochs=args.bootstrap_epochs, timeout_s=args.timeout, target_s=args.target,
    )

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    report = run_drift_bench(options, progress)
    if args.json:
        print(format_table(report), file=sys.stderr)
        print(json.dumps(report))
    else:
        print(format_table(report))
    return 0 if report["status"] == "live" else 1


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise UserError(f"expected comma-separated integers, got {text!r}") from exc


# --- model -------------------------------------------------------------------------------------
def _model_dir(settings: Settings) -> Path:
    return settings.triton.model_repository / settings.triton.model_name


def triton_states(settings: Settings) -> dict[int, str] | None:
    """{version: state} from Triton's repository index, or None when no Triton answers."""
    url = settings.resolved().triton.url
    if not url:
        return None
    try:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(url, **settings.triton.grpc_options())
        index = client.get_model_repository_index(as_json=True, client_timeout=2.0)
    except Exception:
        return None
    return {
        int(m["version"]): m.get("state", "")
        for m in index.get("models", [])
        if m.get("name") == settings.triton.model_name and str(m.get("version", "")).isdigit()
    }


def version_table(settings: Settings) -> dict[str, Any]:

    repository, name = settings.triton.model_repository, settings.triton.model_name
    model_dir = _model_dir(settings)
    states = triton_states(settings)
    rows = []
    for version in versions.list_versions(model_dir):
        card = read_model_card(model_dir / str(version))
        rows.append({
            "version": version,
            "kind": card.kind,
            "parent": card.parent_version,
            "weights": card.weights_of(version),
            "items": len(versions.Vocabulary.load(model_dir / str(version))),
            "seq_len": card.seq_len,
            "k": card.k,
            "created_at": card.created_at,
            "metrics": card.metrics,
            "triton": None if states is None else states.get(version, "not loaded"),
        })
    if states is None:  # assume Triton keeps the newest versions loaded
        loaded = [r["version"] for r in rows[-versions.LOADED_VERSIONS:]]
    else:
        loaded = [r["version"] for r in rows if r["triton"] == "READY"]
    pinned = versions.read_pin(repository, name)
    live = versions.live_version(repository, name, among=loaded)
    return {"model": settings.triton.model_name, "pinned": pinned, "live": live,
            "triton_reachable": states is not None, "versions": rows}


def cmd_model_list(args: argparse.Namespace) -> int:
    table = version_table(Settings.from_env())
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    if not table["versions"]:
        print(f"no published version of {table['model']}")
        return 0
    print(f"{'':2}{'version':>7}  {'kind':<16} {'parent':>6} {'weights':>7} {'items':>6}  "
          f"{'created':<16} {'triton':<10} metrics")
    for r in table["versions"]:
        mark = ("*" if r["version"] == table["live"] else " ") + (
            "P" if r["version"] == table["pinned"] else " ")
        created = (time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
                   if r["created_at"] else "-")
        metrics = " ".join(f"{k}={v:.4f}" for k, v in r["metrics"].items()
                           if isinstance(v, int | float))[:60]
        print(f"{mark}{r['version']:>7}  {r['kind']:<16} {r['parent'] or '-':>6} "
              f"{r['weights']:>7} {r['items']:>6}  {created:<16} {r['triton'] or '-':<10} "
              f"{metrics}")
    reach = "" if table["triton_reachable"] else " (Triton not reachable: assumed)"
    print(f"* live{reach}   P pinned" if table["pinned"] else f"* live{reach}   (no pin: "
          "workers follow the newest READY version)")
    return 0


def cmd_model_pin(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    triton = settings.triton
    version = versions.pin(triton.model_repository, triton.model_name, args.version, args.reason)
    print(f"pinned {settings.triton.model_name}:{version}; workers switch within a second")
    return 0


def cmd_model_unpin(args: argparse.Namespace) -> int:

    settings = Settings.from_env()
    versions.write_pin(settings.triton.model_repository, settings.triton.model_name, None)
    print(f"unpinned {settings.triton.model_name}: workers follow the newest READY version")
    return 0


def cmd_model_rollback(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    triton = settings.triton
    current, target = versions.rollback_target(triton.model_repository, triton.model_name)
    version = versions.pin(triton.model_repository, triton.model_name, target,
                           f"rollback from {current}")
    print(f"rolled back {triton.model_name}:{current} -> {triton.model_name}:{version}"
          + ("" if version == target else f" (a copy of version {target})")
          + "; `streamrec model unpin` to follow new versions again")
    return 0


def cmd_model_bootstrap(args: argparse.Namespace) -> int:
    from training.bootstrap import ensure_demo_model

    settings = Settings.from_env()
    version = ensure_demo_model(settings, lambda line: print(line, file=sys.stderr, flush=True))
    if version is None:
        print(f"{settings.triton.model_name}: a version exists (or no torch): nothing to do",
              file=sys.stderr)
    return 0


def cmd_model_prune(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    triton = settings.triton
    keep = args.keep if args.keep is not None else triton.keep_versions
    if keep < versions.LOADED_VERSIONS:
        raise UserError(f"--keep must be at least {versions.LOADED_VERSIONS} "
                        "(the versions Triton keeps loaded)")
    result = versions.prune(triton.model_repository, triton.model_name, keep,
                            dry_run=args.dry_run)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    gone = result["delete"] if args.dry_run else result["deleted"]
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{triton.model_name}: {verb} {len(gone)} version(s) {gone or ''}".rstrip())
    print(f"kept {result['keep']} (live {result['live']}, pinned {result['pinned']}, "
          f"rollback target {result['rollback_target']}, newest {keep})")
    return 0
