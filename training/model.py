"""SASRec-style causal transformer over a user's recent items, with fused item representations.

An item's vector is the layer-normalised *sum* of its sources:

- a learned ID embedding;
- a projection of its text embedding (all-MiniLM-L6-v2, precomputed, frozen);
- any extra per-item vectors (e.g. image embeddings): ``extra_vectors`` is a configuration, not
  a fork of the model.

The normalisation puts an item without an ID source (a new item, or a known one under ID dropout)
on the same scale as a known item. "ID dropout" replaces an item's ID source at random (per item
per batch, as inputs and as softmax targets) with one learned *new-item* vector, so the text
projection is trained to stand in for the ID: that is how a new item, which has no trained ID
embedding, becomes recommendable from its text (``new_item_vectors``). Content dropout on the
text vectors keeps the projection from memorising each known item by its text, which says
nothing about an item it has never seen.

Scores are dot products between the sequence's last hidden state and every item's fused vector
(full softmax over the catalogue in training). With ``item_bias`` the last coordinate of every
item vector is a learned score bias instead (the item's own for a known item, one shared
*new-item bias* for an item without an ID) and the last coordinate of the hidden state is the
constant 1, so ``hidden @ table.T`` is "taste match + bias" with the served interface unchanged.
Measured (README, "The model"): the bias raised seed 0's validation NDCG@10 (0.1121 -> 0.1209);
it did not make new items competitive with popular known items in a whole-catalogue ranking
(the learned biases stay small: popularity lives in the taste match).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from streamrec.core.model_card import DEFAULT_SEQ_LEN


@dataclass
class ModelConfig:
    """The model's hyperparameters; :class:`training.train.TrainConfig` holds one.

    ``n_items`` (the vocabulary size including padding, index 0) and ``extra_dims`` come from
    the data: 0 and empty until a vocabulary sets them (:meth:`TrainConfig.model_config`).
    """

    n_items: int = 0
    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = DEFAULT_SEQ_LEN  # recorded as seq_len in each version's model card
    # dropout, id_dropout and content_dropout, like TrainConfig's lr and weight decay, are the
    # best of a 41-trial Optuna study on seed 0's VALIDATION NDCG@10 (`python -m training.tune
    # --trials 40 --jobs 2`; README, "The model"): 0.1321 against 0.1267 for the hand-set
    # 0.2 / 0.1 / 0.5; rounded to two digits
    dropout: float = 0.16
    use_ids: bool = True
    use_text: bool = True
    text_dim: int = 384
    extra_dims: list[int] = field(default_factory=list)
    # ID dropout trains the text path to score an item without its ID (a new item); the study
    # drove it towards 0 for warm accuracy: the cold rows in the eval say what that costs
    id_dropout: float = 0.01
    # dropout on the content vectors (text, extras) entering their projections, in training:
    # without it the projection can memorise each known item from its 384-d text vector, which
    # tells nothing about an item it has never seen
    content_dropout: float = 0.25
    item_bias: bool = True  # the last coordinate is a score bias (False: checkpoints before it)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ItemEncoder(nn.Module):
    """Fuses ID, text and extra vectors into one item vector per vocabulary entry:
    ``LayerNorm(id + sum_k proj_k(content_k))``; row 0 (padding) is zero."""

    def __init__(
        self,
        config: ModelConfig,
        text_vectors: torch.Tensor | None = None,
        extra_vectors: list[torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.id_embedding = nn.Embedding(config.n_items, d, padding_idx=0)
        nn.init.normal_(self.id_embedding.weight, std=d**-0.5)
        # the ID source of an item without a trained ID (ID dropout, or a new item)
        self.new_item_id = nn.Parameter(torch.zeros(d))
        self.item_bias = nn.Embedding(config.n_items, 1, padding_idx=0)
        nn.init.zeros_(self.item_bias.weight)
        self.new_item_bias = nn.Parameter(torch.zeros(1))
        self.projections = nn.ModuleList()
        vectors = []
        if config.use_text:
            if text_vectors is None:
                text_vectors = torch.zeros(config.n_items, config.text_dim)
            vectors.append(text_vectors.float())
            self.projections.append(self._projection(config.text_dim, d))
        extra_vectors = extra_vectors or [torch.zeros(config.n_items, d) for d in config.extra_dims]
        for dim, extra in zip(config.extra_dims, extra_vectors, strict=True):
            vectors.append(extra.float())
            self.projections.append(self._projection(dim, d))
        for i, v in enumerate(vectors):
            self.register_buffer(f"content_{i}", v, persistent=True)
        self.n_content = len(vectors)
        self.content_dropout = nn.Dropout(config.content_dropout)
        # rows start at norm ~1, the scale of the ID embeddings' initialisation
        self.norm = nn.LayerNorm(d)
        nn.init.constant_(self.norm.weight, d**-0.5)

    @staticmethod
    def _projection(in_dim: int, out_dim: int) -> nn.Module:
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def content(self, i: int) -> torch.Tensor:
        return getattr(self, f"content_{i}")

    def fuse(self, sources: list[torch.Tensor]) -> torch.Tensor:
        """The normalised sum of the sources ([N, d] each); a missing source enters as zeros."""
        return self.norm(torch.stack(sources).sum(dim=0))

    def table(self, drop_ids: torch.Tensor | None = None) -> torch.Tensor:
        """[V, d] fused vectors of every vocabulary entry (row 0 = padding, zero).

        ``drop_ids`` [V] bool marks rows whose ID source is left out (ID dropout, or items
        scored as new): such a row equals :meth:`new_item_vectors` of its content."""
        sources = []
        if self.config.use_ids:
            ids = self.id_embedding.weight
            if drop_ids is not None:
                ids = torch.where(drop_ids.unsqueeze(-1), self.new_item_id, ids)
            sources.append(ids)
        for i, projection in enumerate(self.projections):
            sources.append(projection(self.content_dropout(self.content(i))))
        fused = self.fuse(sources)
        if self.config.item_bias:
            bias = self.item_bias.weight
            if not self.config.use_ids:
                bias = self.new_item_bias.expand_as(bias)
            elif drop_ids is not None:
                bias = torch.where(drop_ids.unsqueeze(-1), self.new_item_bias, bias)
            fused = self.with_bias(fused, bias)
        not_padding = torch.ones(fused.shape[0], 1, dtype=fused.dtype, device=fused.device)
        not_padding[0] = 0.0
        return fused * not_padding

    def new_item_vectors(
        self, text_vectors: torch.Tensor, extra: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Fused vectors for items without a learned ID embedding (the learned new-item vector
        as their ID source); a missing extra modality (e.g. no image yet) enters as zeros."""
        n = text_vectors.shape[0]
        extra = list(extra or [])
        extra += [torch.zeros(n, d) for d in self.config.extra_dims[len(extra):]]
        contents = [text_vectors, *extra] if self.config.use_text else extra
        sources = [projection(vectors.float())
                   for projection, vectors in zip(self.projections, contents, strict=True)]
        if not sources:  # an ID-only model has nothing to score a new item from
            return self.fuse([torch.zeros(n, self.config.dim)])
        if self.config.use_ids:
            sources.append(self.new_item_id.expand(n, -1))
        fused = self.fuse(sources)
        if self.config.item_bias:
            fused = self.with_bias(fused, self.new_item_bias.expand(n, 1))
        return fused

    @staticmethod
    def with_bias(vectors: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``vectors`` [N, d] with the last coordinate replaced by ``bias`` [N, 1]."""
        return torch.cat([vectors[:, :-1], bias], dim=1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        # checkpoints from before the new-item vector and the biases had none: zero then
        state_dict.setdefault(prefix + "new_item_id", torch.zeros(self.config.dim))
        state_dict.setdefault(prefix + "item_bias.weight", torch.zeros(self.config.n_items, 1))
        state_dict.setdefault(prefix + "new_item_bias", torch.zeros(1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class CausalBlock(nn.Module):
    """Pre-norm self-attention (causal) + feed-forward, written out for clean ONNX export."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q = q.reshape(b, n, h, d // h).transpose(1, 2)
        k = k.reshape(b, n, h, d // h).transpose(1, 2)
        v = v.reshape(b, n, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) * self.scale + attn_bias
        att = torch.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.dropout(self.out(y))
        return x + self.dropout(self.ffn(self.norm2(x)))


class SequenceRecommender(nn.Module):
    """SASRec with fused item vectors: next-item scores over the whole catalogue."""

    def __init__(
        self,
        config: ModelConfig,
        text_vectors: torch.Tensor | None = None,
        extra_vectors: list[torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.items = ItemEncoder(config, text_vectors, extra_vectors)
        self.position = nn.Embedding(config.max_len, config.dim)
        self.blocks = nn.ModuleList(
            CausalBlock(config.dim, config.heads, config.dropout) for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, item_seq: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, d] for left-padded sequences [B, L] of vocabulary indices."""
        b, n = item_seq.shape
        x = table[item_seq] * math.sqrt(self.config.dim)
        positions = torch.arange(n, device=item_seq.device).unsqueeze(0)
        x = self.dropout(x + self.position(positions))
        pad = item_seq == 0
        x = x * (~pad).unsqueeze(-1).to(x.dtype)
        pos = torch.arange(n, device=item_seq.device)
        causal = pos.unsqueeze(0) > pos.unsqueeze(1)  # [L, L]: key after query
        blocked = causal.unsqueeze(0) | pad.unsqueeze(1)  # [B, L, L]
        # a fully padded row attends to itself so softmax stays finite
        eye = (pos.unsqueeze(0) == pos.unsqueeze(1)).unsqueeze(0)
        blocked = blocked & ~eye
        bias = torch.zeros(b, 1, n, n, dtype=x.dtype, device=item_seq.device)
        bias = bias.masked_fill(blocked.unsqueeze(1), -1e9)
        for block in self.blocks:
            x = block(x, bias)
        hidden = self.norm(x)
        if self.config.item_bias:  # the coordinate that multiplies each item's score bias
            hidden = torch.cat([hidden[..., :-1], torch.ones_like(hidden[..., -1:])], dim=-1)
        return hidden

    def forward(
        self,
        item_seq: torch.Tensor,
        drop_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, L, V] for the next item at every position, or [N, V] for the positions
        selected by the boolean mask ``positions`` [B, L] (training skips padding)."""
        table = self.items.table(drop_ids)
        hidden = self.encode(item_seq, table)
        if positions is not None:
            hidden = hidden[positions]
        return hidden @ table.t()

    @torch.no_grad()
    def score_last(self, item_seq: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [B, V] for the item after the last position."""
        table = self.items.table() if table is None else table
        return self.encode(item_seq, table)[:, -1, :] @ table.t()
