"""Item ids to model tensors and back, for one model version's vocabulary.

Sequences are left-padded with 0 to the model's length (the version's model card records it as
``seq_len``), most recent item last; items the
vocabulary does not know are dropped (the model has no row for them). Exclusion lists are
right-padded with 0 to a bucketed width (a power of two, at least ``min_width``) so concurrent
requests from different callers often have the same shape, which Triton's dynamic batcher needs
to batch them on the native backends.
"""

from __future__ import annotations

import math

import numpy as np

from streamrec.core.versions import Vocabulary


def bucket_width(n: int, min_width: int = 16) -> int:
    """The exclusion tensor's width for ``n`` ids: the next power of two, >= ``min_width``."""
    return max(min_width, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def encode_sequences(
    vocab: Vocabulary, sequences: list[list[str]], seq_len: int
) -> np.ndarray:
    """``item_seq`` [B, seq_len] int64, left-padded, most recent item last."""
    out = np.zeros((len(sequences), seq_len), dtype=np.int64)
    index_of = vocab.index_of
    for row, sequence in enumerate(sequences):
        known = [index_of[i] for i in sequence if i in index_of][-seq_len:]
        if known:
            out[row, seq_len - len(known):] = known
    return out


def encode_exclusions(
    vocab: Vocabulary, exclude: list[list[str]], min_width: int = 16
) -> np.ndarray:
    """``exclude_items`` [B, E] int64, right-padded with 0 (the padding index)."""
    index_of = vocab.index_of
    rows = [[index_of[i] for i in items if i in index_of] for items in exclude]
    out = np.zeros((len(rows), bucket_width(max(map(len, rows), default=1), min_width)),
                   dtype=np.int64)
    for row, indices in enumerate(rows):
        out[row, : len(indices)] = indices
    return out


def decode(
    vocab: Vocabulary, top_items: np.ndarray, top_scores: np.ndarray, k: int
) -> list[list[tuple[str, float]]]:
    """Top-``k`` (item_id, score) per row; padding and masked (-inf) entries are skipped."""
    ids = vocab.items
    # one vectorised mask; the model's K is usually larger than k, so only k columns are read
    valid = (top_items > 0) & (top_items <= len(ids)) & np.isfinite(top_scores)
    if valid.all():
        rows = zip(top_items[:, :k].tolist(), top_scores[:, :k].tolist(), strict=True)
        return [[(ids[i - 1], s) for i, s in zip(items, scores, strict=True)]
                for items, scores in rows]
    out = []
    for items, scores, keep in zip(top_items, top_scores, valid, strict=True):
        out.append([(ids[i - 1], s) for i, s in zip(
            items[keep][:k].tolist(), scores[keep][:k].tolist(), strict=True)])
    return out
