"""Baselines evaluated in the same harness as the sequence model (numpy only, no torch).

Each baseline is fitted on the training sequences (vocabulary indices, 0 = padding) and scores
every item for a history: ``scores(histories) -> [B, V]``. Masking and ranking are the
harness's job (``training/evaluate.py``), so every model is ranked the same way.

- :class:`MostPopular`: training interaction counts;
- :class:`ItemKNN`: item-item cosine similarity of the user-item matrix, summed over the user's
  recent items with a recency decay (the classic item-kNN / co-visitation recommender);
- :class:`ImplicitALS`: matrix factorisation for implicit feedback (Hu, Koren, Volinsky 2008),
  alternating least squares; a history is folded in as a user vector at scoring time (MF cannot
  score an unseen user otherwise);
- :class:`TextZeroShot`: no training at all: cosine similarity between each item's MiniLM text
  vector and the recency-weighted mean of the user's recent items' vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _user_item_matrix(sequences: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    matrix = np.zeros((len(sequences), n_items), dtype=np.float32)
    for row, seq in enumerate(sequences):
        matrix[row, np.asarray(seq, dtype=np.int64)] = 1.0
    matrix[:, 0] = 0.0
    return matrix


def _recency_weights(length: int, decay: float) -> np.ndarray:
    """Weights for a history of ``length`` items, most recent (last) = 1."""
    return decay ** np.arange(length - 1, -1, -1, dtype=np.float64)


class MostPopular:
    name = "most_popular"

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.counts = np.zeros(n_items, dtype=np.float64)

    def fit(self, sequences: Sequence[Sequence[int]]) -> MostPopular:
        for seq in sequences:
            np.add.at(self.counts, np.asarray(seq, dtype=np.int64), 1.0)
        self.counts[0] = 0.0
        return self

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return np.tile(self.counts, (len(histories), 1))


class ItemKNN:
    """Cosine item-item similarity (top ``neighbours`` kept per item) over recent history."""

    name = "item_knn"

    def __init__(
        self, n_items: int, neighbours: int = 100, recent: int = 50, decay: float = 0.9,
        shrink: float = 10.0,
    ) -> None:
        self.n_items, self.neighbours, self.recent = n_items, neighbours, recent
        self.decay, self.shrink = decay, shrink
        self.similarity = np.zeros((n_items, n_items), dtype=np.float32)

    def fit(self, sequences: Sequence[Sequence[int]]) -> ItemKNN:
        matrix = _user_item_matrix(sequences, self.n_items)
        co = matrix.T @ matrix
        counts = np.diag(co).copy()
        norm = np.sqrt(np.outer(counts, counts)) + self.shrink
        sim = co / norm
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < self.n_items:
            cut = np.partition(sim, -self.neighbours, axis=1)[:, -self.neighbours][:, None]
            sim = np.where(sim >= cut, sim, 0.0)
        self.similarity = sim.astype(np.float32)
        return self

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(histories), self.n_items), dtype=np.float64)
        for row, history in enumerate(histories):
            recent = np.asarray(history[-self.recent :], dtype=np.int64)
            if recent.size:
                weights = _recency_weights(len(recent), self.decay)
                out[row] = weights @ self.similarity[recent]
        return out


class ImplicitALS:
    """Weighted matrix factorisation for implicit feedback, fitted by ALS (numpy)."""

    name = "als_mf"

    def __init__(
        self, n_items: int, dim: int = 64, reg: float = 5.0, alpha: float = 10.0,
        iterations: int = 12, seed: int = 0,
    ) -> None:
        self.n_items, self.dim, self.reg, self.alpha = n_items, dim, reg, alpha
        self.iterations, self.seed = iterations, seed
        self.item_factors = np.zeros((n_items, dim))

    def fit(self, sequences: Sequence[Sequence[int]]) -> ImplicitALS:
        rng = np.random.default_rng(self.seed)
        matrix = _user_item_matrix(sequences, self.n_items).astype(np.float64)
        users = rng.normal(0, 0.01, (matrix.shape[0], self.dim))
        items = rng.normal(0, 0.01, (self.n_items, self.dim))
        for _ in range(self.iterations):
            users = self._solve(matrix, items)
            items = self._solve(matrix.T, users)
        items[0] = 0.0
        self.item_factors = items
        return self

    def _solve(self, matrix: np.ndarray, fixed: np.ndarray) -> np.ndarray:
        """Rows of ``matrix`` (binary preferences) -> factors, with the others held fixed."""
        gram = fixed.T @ fixed + self.reg * np.eye(self.dim)
        out = np.zeros((matrix.shape[0], self.dim))
        for row in range(matrix.shape[0]):
            idx = np.flatnonzero(matrix[row])
            if idx.size == 0:
                continue
            f = fixed[idx]
            a = gram + self.alpha * f.T @ f
            out[row] = np.linalg.solve(a, (1.0 + self.alpha) * f.sum(axis=0))
        return out

    def user_vectors(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return self._solve(_user_item_matrix(histories, self.n_items), self.item_factors)

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return self.user_vectors(histories) @ self.item_factors.T


class TextZeroShot:
    """Embedding similarity to the user's recent items (MiniLM vectors, no training)."""

    name = "text_zero_shot"

    def __init__(self, text_vectors: np.ndarray, recent: int = 10, decay: float = 0.8) -> None:
        norms = np.linalg.norm(text_vectors, axis=1, keepdims=True)
        self.vectors = text_vectors / np.maximum(norms, 1e-12)
        self.recent, self.decay = recent, decay

    def fit(self, sequences: Sequence[Sequence[int]]) -> TextZeroShot:
        return self

    def scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        profiles = np.zeros((len(histories), self.vectors.shape[1]))
        for row, history in enumerate(histories):
            recent = np.asarray(history[-self.recent :], dtype=np.int64)
            if recent.size:
                profiles[row] = _recency_weights(len(recent), self.decay) @ self.vectors[recent]
        return profiles @ self.vectors.T
