"""The recent holdout a retrain is judged on: each recent user's last event held out.

>>> from training.data import Interactions
>>> recent = Interactions(["u", "u", "u", "v"], ["a", "b", "c", "a"], [1, 2, 3, 4])
>>> train, cases = holdout_split(recent)
>>> cases.targets, cases.histories, len(train)
(['c'], [['a', 'b']], 3)
"""

from __future__ import annotations

from dataclasses import dataclass

from training.data import Interactions


@dataclass
class HoldoutCases:
    """Recent users' last items (targets) with the histories before them, in item ids."""

    histories: list[list[str]]
    targets: list[str]


def holdout_split(recent: Interactions, min_events: int = 3) -> tuple[Interactions, HoldoutCases]:
    """Hold out the last event of each recent user with at least ``min_events``:
    (training interactions, holdout cases)."""
    per_user = recent.sequences()
    users, items, ts = [], [], []
    histories, targets = [], []
    for user, seq in per_user.items():
        keep = seq[:-1] if len(seq) >= min_events else seq
        if len(seq) >= min_events:
            histories.append([i for i, _ in seq[:-1]])
            targets.append(seq[-1][0])
        for item, t in keep:
            users.append(user)
            items.append(item)
            ts.append(t)
    return Interactions(users, items, ts).time_ordered(), HoldoutCases(histories, targets)
