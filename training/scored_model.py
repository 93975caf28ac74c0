"""A trained sequence model with its vocabulary, answering in item ids.

:class:`ScoredModel` gives top-K lists and full-ranking target ranks in item-id space, so
versions with different vocabularies compare on the same holdout cases
(:mod:`training.holdout`). Torch is imported inside the methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from streamrec.core.metrics import ranking_metrics, target_ranks
from training.data import Vocabulary, pad_left
from training.holdout import HoldoutCases

if TYPE_CHECKING:
    from training.model import SequenceRecommender


class ScoredModel:
    """A trained sequence model and its vocabulary, answering in item ids.

    ``label`` names the version in feedback (e.g. ``sasrec:3``). The item table is computed
    once (the model is in eval mode and never changes after construction).
    """

    def __init__(self, model: SequenceRecommender, vocab: Vocabulary, label: str,
                 result: Any = None) -> None:
        import torch

        self.model = model.eval()
        self.vocab = vocab
        self.base_vocab = vocab  # the vocabulary the weights were trained on
        self.label = label
        self.result = result  # the TrainResult when this model was just trained
        with torch.no_grad():
            self.table = model.items.table()

    def with_new_items(self, items: list[str], text_vectors: np.ndarray) -> ScoredModel:
        """This version with ``items`` appended as text-only rows, same weights: the catalogue
        refresh that :mod:`training.catalog` does on the ONNX file, here in torch (the item
        tower turns each text vector into an item row; the ID source is missing)."""
        import torch

        with torch.no_grad():
            rows = self.model.items.new_item_vectors(
                torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)))
        return self.with_item_rows(items, rows.numpy())

    def with_item_rows(self, items: list[str], rows: np.ndarray) -> ScoredModel:
        """This version with ``items`` appended with the given item rows [n, d] (e.g. the rows
        a catalogue refresh appended to the served version's table), same weights."""
        import torch

        extended = ScoredModel.__new__(ScoredModel)
        extended.model, extended.label, extended.result = self.model, self.label, self.result
        extended.vocab = Vocabulary([*self.vocab.items, *items])
        extended.base_vocab = self.base_vocab
        extended.table = torch.cat([self.table, torch.from_numpy(
            np.asarray(rows, dtype=np.float32).reshape(len(items), self.table.shape[1]))])
        return extended

    def scores(self, sequences: list[list[str]]) -> np.ndarray:
        """[B, V] scores (row entries by vocabulary index; column 0 is padding)."""
        import torch

        encoded = [self.vocab.encode(s) for s in sequences]
        seq = torch.from_numpy(pad_left(encoded, self.model.config.max_len))
        with torch.no_grad():
            return self.model.score_last(seq, self.table).numpy()

    def recommend(
        self, sequences: list[list[str]], exclude: list[list[str]], k: int
    ) -> list[list[tuple[str, float]]]:
        scores = self.scores(sequences)
        scores[:, 0] = -np.inf
        out = []
        for row, excluded in zip(scores, exclude, strict=True):
            idx = [self.vocab.index_of[i] for i in excluded if i in self.vocab.index_of]
            row[idx] = -np.inf
            kk = min(k, len(row) - 1)
            top = np.argpartition(-row, kk - 1)[:kk]
            top = top[np.argsort(-row[top], kind="stable")]
            out.append([(self.vocab.items[i - 1], float(row[i])) for i in top
                        if np.isfinite(row[i])])
        return out

    def target_ranks(self, cases: HoldoutCases) -> np.ndarray:
        """0-based full-ranking rank of each target (own history excluded; ties counted
        against the target, :func:`streamrec.core.metrics.target_ranks`); ``inf`` when the
        target is not in this version's vocabulary."""
        ranks = np.full(len(cases.targets), np.inf)
        for start in range(0, len(cases.targets), 512):
            stop = start + 512
            scores = self.scores(cases.histories[start:stop])
            scores[:, 0] = -np.inf
            for j, (target, history) in enumerate(
                zip(cases.targets[start:stop], cases.histories[start:stop], strict=True)
            ):
                t = self.vocab.index_of.get(target)
                if t is None:
                    continue
                row = scores[j]
                idx = [self.vocab.index_of[i] for i in set(history) if i in self.vocab.index_of
                       and i != target]
                row[idx] = -np.inf
                ranks[start + j] = target_ranks(row[None, :], np.array([t]))[0]
        return ranks

    def evaluate(self, cases: HoldoutCases) -> dict[str, float]:
        metrics = ranking_metrics(self.target_ranks(cases))
        metrics["n_cases"] = len(cases.targets)
        return metrics
