"""``streamrec bench inference``: in-process onnxruntime vs Triton gRPC, by batch and concurrency.

Every case runs for a fixed time with ``concurrency`` callers, each sending requests of ``batch``
sequences back to back, and reports sequences/s and request latency p50/p99. Modes:

- ``onnxruntime``: the version's ``model.onnx`` in this process (one session, callers in
  threads; onnxruntime releases the GIL);
- ``triton``: raw gRPC requests to Triton (asyncio client); ``server batch`` is the mean batch
  Triton executed (from its statistics API), which shows dynamic batching;
- ``client-batched``: single-sequence calls through :class:`~inference.client.ModelClient` with
  its micro-batcher on (up to 64 sequences or 2 ms), i.e. batching in the worker instead.

The model is the served repository's newest version when there is one, else the testing model
(:mod:`inference.testing_model`) built in a temporary directory.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference import codec, testing_model
from streamrec.core import versions
from streamrec.core.metrics import percentile
from streamrec.core.model_card import ModelCard, read_model_card

BATCHES = (1, 16, 64)
CONCURRENCY = (1, 8, 32)


@dataclass
class CaseResult:
    mode: str
    batch: int
    concurrency: int
    requests: int
    seq_per_s: float
    p50_ms: float
    p99_ms: float
    server_batch: float | None = None


def _inputs(card: ModelCard, batch: int, seed: int,
            exclude_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random full sequences of the version's length, each excluding its own items, plus
    random other items up to ``exclude_width`` (the worker sends a user's whole seen-set, up
    to ``engine.seen_capacity`` = 2,000 ids)."""
    rng = np.random.default_rng(seed)
    item_seq = rng.integers(1, card.n_items + 1, size=(batch, card.seq_len)).astype(np.int64)
    width = codec.bucket_width(max(card.seq_len, exclude_width or 0))
    exclude = np.zeros((batch, width), dtype=np.int64)
    exclude[:, : card.seq_len] = item_seq
    if exclude_width and exclude_width > card.seq_len:
        exclude[:, card.seq_len:exclude_width] = rng.integers(
            1, card.n_items + 1, size=(batch, exclude_width - card.seq_len))
    return item_seq, exclude


def _summary(mode: str, batch: int, concurrency: int, latencies: list[float],
             elapsed: float) -> CaseResult:
    lat = [seconds * 1000 for seconds in latencies]
    return CaseResult(
        mode, batch, concurrency, len(latencies), len(latencies) * batch / elapsed,
        percentile(lat, 50), percentile(lat, 99),
    )


def bench_onnxruntime(model_path: Path, card: ModelCard, batch: int, concurrency: int,
                      duration_s: float, threads: int,
                      exclude_width: int | None = None) -> CaseResult:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    item_seq, exclude = _inputs(card, batch, 0, exclude_width)
    feeds = {"item_seq": item_seq, "exclude_items": exclude}
    session.run(None, feeds)  # warm-up
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s

    def worker() -> None:
        mine = []
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            session.run(None, feeds)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return _summary("onnxruntime", batch, concurrency, latencies, time.perf_counter() - started)


async def _server_counts(client: Any, model: str) -> tuple[int, int]:
    stats = await client.get_inference_statistics(model, as_json=True)
    inferences = executions = 0
    for entry in stats.get("model_stats", []):
        inferences += int(entry.get("inference_count", 0))
        executions += int(entry.get("execution_count", 0))
    return inferences, executions


async def bench_triton(url: str, model: str, version: int, card: ModelCard, batch: int,
                       concurrency: int, duration_s: float,
                       exclude_width: int | None = None) -> CaseResult:
    import tritonclient.grpc.aio as grpcclient

    client = grpcclient.InferenceServerClient(url)
    item_seq, exclude = _inputs(card, batch, 0, exclude_width)
    inputs = [grpcclient.InferInput("item_seq", list(item_seq.shape), "INT64"),
              grpcclient.InferInput("exclude_items", list(exclude.shape), "INT64")]
    inputs[0].set_data_from_numpy(item_seq)
    inputs[1].set_data_from_numpy(exclude)
    await client.infer(model, inputs, model_version=str(version))  # warm-up
    before = await _server_counts(client, model)
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await client.infer(model, inputs, model_version=str(version))
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = await _server_counts(client, model)
    await client.close()
    result = _summary("triton", batch, concurrency, latencies, elapsed)
    executions = after[1] - before[1]
    result.server_batch = (after[0] - before[0]) / executions if executions else None
    return result


async def bench_client_batched(url: str, repository: Path, model: str, concurrency: int,
                               duration_s: float) -> CaseResult:
    from inference.client import ClientConfig, ModelClient

    config = ClientConfig(url=url, model_repository=repository, model_name=model,
                          timeout_s=5.0, max_batch=64, max_delay_s=0.002)
    async with ModelClient(config) as client:
        assert client.live is not None
        ids = client.live.vocab.items
        rng = np.random.default_rng(0)
        sequence = [ids[i] for i in rng.integers(0, len(ids), size=client.live.seq_len)]
        await client.recommend([sequence], [sequence], 10)
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration_s

        async def caller() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await client.recommend([sequence], [sequence], 10)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        sizes = client.stats.batch_sizes
    result = _summary("client-batched", 1, concurrency, latencies, elapsed)
    total = sum(sizes.values())
    result.server_batch = sum(k * v for k, v in sizes.items()) / total if total else None
    return result


def prepare_repository(source: Path, model: str, workdir: Path) -> tuple[Path, str]:
    """A repository to benchmark: the served one when it has a version, else the testing one."""
    if versions.list_versions(source / model):
        return source, f"{model} from {source}"
    repo = workdir / "model_repository"
    testing_model.write_model_repository(repo, name=model, n_items=2000, dim=64)
    return repo, f"testing model (2000 items, 64-d) in {repo}"


def run_benchmark(
    source_repository: Path, model: str = "sasrec", duration_s: float = 2.0,
    batches: tuple[int, ...] = BATCHES, concurrency: tuple[int, ...] = CONCURRENCY,
    threads: int = 1, progress: Any = None, exclude_width: int | None = None,
) -> dict[str, Any]:
    """Run every case; returns ``{"model": ..., "results": [CaseResult as dict, ...]}``."""
    from inference.triton_server import start_triton, stop_triton

    workdir = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))
    try:
        repo, description = prepare_repository(source_repository, model, workdir)
        version = versions.latest_version(repo / model)
        assert version is not None
        version_dir = repo / model / str(version)
        card = read_model_card(version_dir)
        results: list[CaseResult] = []
        say = progress or (lambda _line: None)
        for b in batches:
            for c in concurrency:
                say(f"onnxruntime batch {b} concurrency {c}")
                results.append(bench_onnxruntime(version_dir / versions.MODEL_FILE, card,
                                                 b, c, duration_s, threads, exclude_width))
        server = start_triton(repo, log_path=workdir / "triton.log",
                              backend_dir=workdir / "backends", control_mode="explicit")
        try:
            for b in batches:
                for c in concurrency:
                    say(f"triton batch {b} concurrency {c}")
                    results.append(asyncio.run(bench_triton(
                        server.grpc_address, model, version, card, b, c, duration_s,
                        exclude_width)))
            for c in concurrency:
                if c > 1:
                    say(f"client-batched concurrency {c}")
                    results.append(asyncio.run(bench_client_batched(
                        server.grpc_address, repo, model, c, duration_s)))
        finally:
            stop_triton(server)
        return {"model": description, "version": version, "duration_s": duration_s,
                "onnxruntime_threads": threads, "exclude_width": exclude_width or card.seq_len,
                "results": [asdict(r) for r in results]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def format_table(report: dict[str, Any]) -> str:
    rows = report["results"]
    lines = [
        f"model: {report['model']} (version {report['version']}), "
        f"{report['duration_s']:g} s per case, onnxruntime threads "
        f"{report['onnxruntime_threads']}",
        f"{'mode':<15} {'batch':>5} {'conc':>5} {'seq/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server batch':>12}",
    ]
    for r in rows:
        server = f"{r['server_batch']:.1f}" if r.get("server_batch") else "-"
        lines.append(
            f"{r['mode']:<15} {r['batch']:>5} {r['concurrency']:>5} {r['seq_per_s']:>10,.0f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {server:>12}"
        )
    best = {m: max((r["seq_per_s"] for r in rows if r["mode"] == m and r["batch"] == 64),
                   default=0.0) for m in ("onnxruntime", "triton")}
    if best["onnxruntime"]:
        lines.append(f"batch 64: Triton reaches {best['triton'] / best['onnxruntime']:.0%} of "
                     "in-process onnxruntime throughput (best concurrency of each)")
    return "\n".join(lines)
