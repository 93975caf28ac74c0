"""``streamrec bench inference`` and ``streamrec model list|pin|unpin|rollback``.

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
    inference.set_defaults(func=cmd_bench_inference)
    rerank = bench_sub.add_parser(
        "rerank", help="the River re-ranker's cost per list, alone and with the feedback "
                       "click learned")
    rerank.add_argument("--json", action="store_true", help="machine-readable output")
    rerank.add_argument("--lists", type=int, default=500, help="candidate lists to time")
    rerank.add_argument("--seed", type=int, default=0)
    rerank.set_defaults(func=cmd_bench_rerank)

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

        client = grpcclient.InferenceServerClient(url)
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
