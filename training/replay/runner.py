"""Several seeds of a replay on a pool of processes, with progress lines.

A replay of one seed is a handful of independent passes (one per variant) over the same stream;
the model variants need that seed's frozen model first. :func:`run_seeds` trains the frozen
models, then runs the passes, on ``workers`` processes: the longest ready pass first (the
adaptive loop, then the frozen model with the re-ranker, then the stream baselines), so that
the last pass to finish is a short one. ``frozen`` and ``reranked`` share one pass and one
memo of the frozen model's answers (:class:`~training.replay.prequential.MemoModel`): the same
model asked about the same sequence answers the same.

Each process reads its settings from the environment (``STREAMREC_*``) and rebuilds the data
from the :class:`ReplaySpec` (the synthetic stream is reproducible from its seed; MovieLens is
read from the installed package); the results come back as
:class:`~training.replay.prequential.VariantRun` objects.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from training.replay.data import ReplayData, movielens_data, synthetic_data
from training.replay.prequential import (
    MODEL_VARIANTS,
    Replayer,
    ReplayOptions,
    VariantRun,
)

# passes by expected cost, longest first; variants in one tuple share a pass's process
PASSES: tuple[tuple[str, ...], ...] = (
    ("adaptive",), ("frozen", "reranked"), ("biased_mf",), ("covisit",), ("popular",),
)


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay: the dataset, the synthetic stream's shape and the replay options."""

    dataset: str = "synthetic"
    options: ReplayOptions = field(default_factory=ReplayOptions)
    synthetic: dict[str, int] = field(default_factory=dict)  # events, warm, drift_at, ...

    def data(self, seed: int) -> ReplayData:
        if self.dataset == "synthetic":
            return synthetic_data(seed=seed, **self.synthetic)
        return movielens_data()

    def replayer(self, seed: int) -> Replayer:
        return Replayer(self.data(seed), replace(self.options, seed=seed))


def passes_for(variants: list[str]) -> list[tuple[str, ...]]:
    """The passes that run ``variants``, longest first."""
    wanted = set(variants)
    out = [tuple(v for v in group if v in wanted) for group in PASSES]
    return [group for group in out if group]


def _train(spec: ReplaySpec, seed: int) -> dict[str, Any]:
    return spec.replayer(seed).frozen_training()


def _run_pass(spec: ReplaySpec, seed: int, names: tuple[str, ...]) -> dict[str, VariantRun]:
    replayer = spec.replayer(seed)
    return {name: replayer.run(name) for name in names}


def run_seeds(spec: ReplaySpec, seeds: list[int], variants: list[str], workers: int,
              log: Callable[[str], None] | None = None) -> dict[int, dict[str, VariantRun]]:
    """Every variant of every seed; ``workers`` processes (1: in this process, in order)."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    passes = passes_for(variants)
    needs_model = any(v in MODEL_VARIANTS for v in variants)
    runs: dict[int, dict[str, VariantRun]] = {seed: {} for seed in seeds}
    if workers <= 1:
        for seed in seeds:
            for group in passes:
                runs[seed].update(_run_pass(spec, seed, group))
        return _in_order(runs, variants)
    started = time.monotonic()
    # training first; a seed's model passes become ready when its frozen model is there
    ready = [(seed, group) for seed in seeds for group in passes
             if not any(v in MODEL_VARIANTS for v in group)]
    trainings = list(seeds) if needs_model else []
    todo, done = len(seeds) * len(passes), 0
    context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        running: dict[Future[Any], tuple[int, tuple[str, ...] | None]] = {}
        while trainings or ready or running:
            while len(running) < workers and (trainings or ready):
                if trainings:
                    seed = trainings.pop(0)
                    running[pool.submit(_train, spec, seed)] = (seed, None)
                    continue
                work = _longest(ready, passes)
                ready.remove(work)
                running[pool.submit(_run_pass, spec, *work)] = work
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                seed, group = running.pop(future)
                elapsed = time.monotonic() - started
                if group is None:
                    info = future.result()
                    ready.extend((seed, g) for g in passes
                                 if any(v in MODEL_VARIANTS for v in g))
                    say(f"[{elapsed:5.0f} s] seed {seed}: frozen model {info['source']} "
                        f"({info['epochs_run']} epochs, {info['stop_reason']}, "
                        f"{info['seconds']:.0f} s)")
                    continue
                runs[seed].update(future.result())
                done += 1
                seconds = ", ".join(f"{n} {runs[seed][n].seconds:.0f} s" for n in group)
                say(f"[{elapsed:5.0f} s] seed {seed}: {seconds} ({done}/{todo} passes)")
    return _in_order(runs, variants)


def _longest(ready: list[tuple[int, tuple[str, ...]]],
             passes: list[tuple[str, ...]]) -> tuple[int, tuple[str, ...]]:
    return min(ready, key=lambda w: (passes.index(w[1]), w[0]))


def _in_order(runs: dict[int, dict[str, VariantRun]],
              variants: list[str]) -> dict[int, dict[str, VariantRun]]:
    return {seed: {v: r[v] for v in variants if v in r} for seed, r in runs.items()}
