"""The candidates of the last list sent to each user, kept until the user's next click.

The click that follows a list says which of its candidates was wanted: :class:`CandidateLog`
keeps, per user, the last list's items best first and their feature rows packed as float32
(:class:`LoggedList`), in a bounded LRU. It is lost on restart: learning just skips those lists.

>>> import numpy as np
>>> from streams.rerank.features import FEATURES
>>> log = CandidateLog(capacity=1)
>>> rows = np.zeros((2, len(FEATURES)))
>>> log.put("u1", LoggedList.from_rows("e1", ["a", "b"], rows, n_shown=1))
>>> log.get("u1", "e1").shown
['a']
>>> log.put("u2", LoggedList.from_rows("e2", ["c"], rows[:1], n_shown=1))
>>> log.get("u1", "e1") is None                  # evicted: capacity 1
True
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from streams.rerank.features import FEATURES


@dataclass(slots=True)
class LoggedList:
    """The candidates of the last list sent to one user, for learning from the next click.

    ``items`` best first, the first ``n_shown`` of them shown; their features packed in one
    float32 array (``len(FEATURES)`` values per item) to keep the log small.
    """

    event_id: str
    items: list[str]
    n_shown: int
    packed: array

    @classmethod
    def from_rows(cls, event_id: str, items: list[str], rows: np.ndarray,
                  n_shown: int) -> LoggedList:
        """The list's ``items`` with their rows of a (len(items), len(FEATURES)) matrix."""
        packed = array("f")
        packed.frombytes(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
        return cls(event_id, items, n_shown, packed)

    @classmethod
    def empty(cls, event_id: str) -> LoggedList:
        """A list without candidates (a click after it teaches nothing)."""
        return cls(event_id, [], 0, array("f"))

    @property
    def shown(self) -> list[str]:
        return self.items[: self.n_shown]

    def features(self, item_id: str) -> dict[str, float] | None:
        try:
            row = self.items.index(item_id)
        except ValueError:
            return None
        return self.row(row)

    def row(self, row: int) -> dict[str, float]:
        """The features of ``items[row]``."""
        n = len(FEATURES)
        return dict(zip(FEATURES, self.packed[row * n : (row + 1) * n], strict=True))


class CandidateLog:
    """A bounded LRU of :class:`LoggedList` by user (lost on restart: learning just skips)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lists: OrderedDict[str, LoggedList] = OrderedDict()

    def put(self, user_id: str, logged: LoggedList) -> None:
        self.lists[user_id] = logged
        self.lists.move_to_end(user_id)
        while len(self.lists) > self.capacity:
            self.lists.popitem(last=False)

    def forget(self, user_id: str) -> None:
        """Drop the user's logged list (``streamrec forget``)."""
        self.lists.pop(user_id, None)

    def get(self, user_id: str, event_id: str) -> LoggedList | None:
        logged = self.lists.get(user_id)
        return logged if logged is not None and logged.event_id == event_id else None
