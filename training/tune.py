"""A small Optuna study of the text+ID model's training hyperparameters, on the VALIDATION split.

The objective is the best validation NDCG@10 (second-to-last item per user, history excluded)
of one training; the test items are never looked at. Poor trials are pruned after each epoch
(median of earlier trials at the same epoch). The first trial is the current defaults, so the
study says how far the search moved from them. Usage::

    python -m training.tune --trials 40 --jobs 2 [--timeout-s 2400] [--storage study.log] [--json]

runs ``--jobs`` worker processes (one core each) on one study kept in an Optuna journal file;
prints each trial and the best parameters (the last stdout line is JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from streamrec.core.config import Settings
from training.data import LeaveOneOut
from training.pipeline import load_dataset, log, text_matrix, variant_config

SPACE = {
    "lr": (1e-3, 6e-3),
    "weight_decay": (0.0, 0.2),
    "id_dropout": (0.0, 0.5),
    "content_dropout": (0.0, 0.7),
    "dropout": (0.1, 0.4),
    "batch_size": (64, 128, 256),
}
STUDY_NAME = "text+id"


def suggest(trial: Any) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", *SPACE["lr"], log=True),
        "weight_decay": trial.suggest_float("weight_decay", *SPACE["weight_decay"]),
        "id_dropout": trial.suggest_float("id_dropout", *SPACE["id_dropout"]),
        "content_dropout": trial.suggest_float("content_dropout", *SPACE["content_dropout"]),
        "dropout": trial.suggest_float("dropout", *SPACE["dropout"]),
        "batch_size": trial.suggest_categorical("batch_size", list(SPACE["batch_size"])),
    }


def defaults() -> dict[str, Any]:
    """The current defaults, in the search space's terms: the study's first trial."""
    from training.train import TrainConfig

    config = TrainConfig()
    return {"lr": config.lr, "weight_decay": config.weight_decay,
            "id_dropout": config.model.id_dropout,
            "content_dropout": config.model.content_dropout,
            "dropout": config.model.dropout, "batch_size": config.batch_size}


def open_study(storage_path: Path, seed: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.create_study(
        study_name=STUDY_NAME, direction="maximize", load_if_exists=True,
        storage=JournalStorage(JournalFileBackend(str(storage_path))),
        sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=4))


def run_worker(dataset_name: str, trials: int, epochs: int, max_users: int | None, seed: int,
               storage_path: Path, timeout_s: float | None, worker: int) -> None:
    """One worker process: run trials of the shared study until it holds ``trials`` finished
    (or pruned) trials or ``timeout_s`` passes."""
    import optuna

    from training.train import train_model

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = Settings.from_env()
    dataset = load_dataset(dataset_name, settings, max_users=max_users)
    split = LeaveOneOut.from_interactions(dataset.interactions, dataset.catalog)
    vectors = text_matrix(dataset, split.vocab.items, settings)

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        config = variant_config("text+id", seed, vectors, {"epochs": epochs, **params})

        def report(epoch: int, valid: dict[str, float]) -> bool:
            trial.report(valid["ndcg@10"], epoch)
            return trial.should_prune()

        result = train_model(split, vectors, config, progress=False, on_epoch=report)
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in params.items()}
        log(f"[worker {worker}] trial {trial.number}: {rounded} -> valid ndcg@10 "
            f"{result.valid['ndcg@10']:.4f} ({result.epochs_run} epochs, {result.stop_reason}, "
            f"{result.seconds:.0f} s)")
        trial.set_user_attr("epochs_run", result.epochs_run)
        trial.set_user_attr("stop_reason", result.stop_reason)
        trial.set_user_attr("seconds", round(result.seconds, 1))
        if result.stop_reason == "pruned":
            raise optuna.TrialPruned()
        return result.valid["ndcg@10"]

    study = open_study(storage_path, seed + worker)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(objective, timeout=timeout_s,
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=done)])


def run_study(dataset_name: str, trials: int, epochs: int, max_users: int | None,
              seed: int = 0, *, jobs: int = 1, timeout_s: float | None = None,
              storage: Path | None = None) -> dict[str, Any]:
    """Run the study with ``jobs`` worker processes (one training thread each); return the
    best parameters and every trial. ``storage`` keeps the study (an Optuna journal file) so a
    later call with the same path resumes it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        path = storage or Path(scratch) / "study.log"
        study = open_study(path, seed)
        if not study.trials:
            study.enqueue_trial(defaults())
        args = (dataset_name, trials, epochs, max_users, seed, path, timeout_s)
        if jobs == 1:
            run_worker(*args, 0)
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for future in [pool.submit(run_worker, *args, w) for w in range(jobs)]:
                    future.result()
        study = open_study(path, seed)
        first = study.trials[0]
        return {
            "best_params": study.best_params,
            "best_valid_ndcg@10": study.best_value,
            "defaults_valid_ndcg@10": first.value,
            "trials": [{"number": t.number, "params": t.params, "value": t.value,
                        "state": t.state.name, **t.user_attrs} for t in study.trials],
            "dataset": dataset_name,
            "seed": seed,
            "epochs": epochs,
            "split": "validation (second-to-last item per user); test never used",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--trials", type=int, default=8, help="finished + pruned trials")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one core each")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="each worker starts no trial after this many seconds")
    parser.add_argument("--storage", type=Path, default=None,
                        help="Optuna journal file that keeps (and resumes) the study")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_study(args.dataset, args.trials, args.epochs, args.max_users,
                       jobs=args.jobs, timeout_s=args.timeout_s, storage=args.storage)
    print(f"defaults valid ndcg@10 {result['defaults_valid_ndcg@10']}; best "
          f"{result['best_valid_ndcg@10']:.4f}: {result['best_params']}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
