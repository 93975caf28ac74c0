"""Ports between the stream engine and the model it asks: what a model source promises.

They live in the kernel so that the serving client (``inference``) implements them without
importing the worker (``streams``) that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

FALLBACK = "fallback"

class ModelUnavailable(Exception):
    """The model cannot answer now (down, slow, circuit open)."""


@dataclass(slots=True)
class ModelAnswer:
    """Top-K (item_id, score) lists, one per requested sequence, and which model produced them."""

    lists: list[list[tuple[str, float]]]
    model: str


class ModelSource(Protocol):
    async def recommend(
        self, sequences: list[list[str]], exclude: list[list[str]], k: int
    ) -> ModelAnswer:
        """Raise :class:`ModelUnavailable` when the model cannot answer."""
        ...


