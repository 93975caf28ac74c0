"""A small Optuna study of the text+ID model's training hyperparameters, on the VALIDATION split.

The objective is the best validation NDCG@10 (second-to-last item per user, history excluded)
of one training; the test items are never looked at. Poor trials are pruned after each epoch
(median of earlier trials at the same epoch). Usage::

    python -m training.tune --trials 8 --epochs 20 [--max-users 400] [--json]

prints each trial and the best parameters (the last stdout line is JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from streamrec.core.config import Settings
from training.data import LeaveOneOut
from training.pipeline import load_dataset, log, text_matrix, variant_config

SPACE = {
    "lr": (1e-3, 6e-3),
    "id_dropout": (0.0, 0.5),
    "content_dropout": (0.0, 0.7),
    "dropout": (0.1, 0.4),
    "batch_size": (64, 128, 256),
}


def suggest(trial: Any) -> dict[str, Any]:
    return {
        "lr": trial.suggest_float("lr", *SPACE["lr"], log=True),
        "id_dropout": trial.suggest_float("id_dropout", *SPACE["id_dropout"]),
        "content_dropout": trial.suggest_float("content_dropout", *SPACE["content_dropout"]),
        "dropout": trial.suggest_float("dropout", *SPACE["dropout"]),
        "batch_size": trial.suggest_categorical("batch_size", list(SPACE["batch_size"])),
    }


def run_study(dataset_name: str, trials: int, epochs: int, max_users: int | None,
              seed: int = 0) -> dict[str, Any]:
    import optuna

    from training.train import train_model

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
        log(f"trial {trial.number}: {params} -> valid ndcg@10 {result.valid['ndcg@10']:.4f} "
            f"({result.epochs_run} epochs, {result.stop_reason}, {result.seconds:.0f} s)")
        return result.valid["ndcg@10"]

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=4))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=trials)
    return {
        "best_params": study.best_params,
        "best_valid_ndcg@10": study.best_value,
        "trials": [{"number": t.number, "params": t.params, "value": t.value,
                    "state": t.state.name} for t in study.trials],
        "dataset": dataset.data_range(),
        "epochs": epochs,
        "split": "validation (second-to-last item per user); test never used",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_study(args.dataset, args.trials, args.epochs, args.max_users)
    print(f"best valid ndcg@10 {result['best_valid_ndcg@10']:.4f}: {result['best_params']}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
