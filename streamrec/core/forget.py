"""The ``forget`` control record: how ``streamrec forget USER`` reaches the worker and the trainer.

A forget request is a record on the ``clicks`` topic itself, keyed by the user id like the user's
clicks, marked by the header ``streamrec-control: forget``, with the value
``{"forget_user_id": USER, "requested_at_ms": ...}``. Keyed like the clicks, it lands on the
user's partition *after* every click of the user produced before it, so:

- the worker that owns the user's table entry handles it in order: clicks before it are applied,
  then the user's state is deleted (a changelog tombstone) along with their Redis keys, and
  clicks after it start from an empty state (:mod:`streams.forget`);
- the trainer's reader of ``clicks`` drops every click of the user that comes before the
  request in that partition (:class:`ForgetLedger`), and keeps clicks the user makes later.
  The request is as durable as the clicks it erases: retention removes it only after them.

A consumer that ignores headers sees a record that is not a valid click and skips it.

>>> key, value, headers = forget_record("u1", requested_at_ms=5)
>>> key, headers
(b'u1', [('streamrec-control', b'forget')])
>>> forgotten_user(headers, value)
'u1'
>>> forgotten_user([], b'{"user_id": "u1"}') is None  # a click, not a request
True
>>> ledger = ForgetLedger()
>>> ledger.learn_one("u1", partition=0, offset=10)
>>> ledger.erased("u1", partition=0, offset=3), ledger.erased("u1", partition=0, offset=11)
(True, False)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

CONTROL_HEADER = "streamrec-control"
FORGET = b"forget"


def forget_record(user_id: str, requested_at_ms: int | None = None) -> tuple[
    bytes, bytes, list[tuple[str, bytes]]
]:
    """(key, value, headers) of a forget request for ``user_id`` on the clicks topic."""
    at = int(time.time() * 1000) if requested_at_ms is None else requested_at_ms
    value = json.dumps({"forget_user_id": user_id, "requested_at_ms": at}).encode()
    return user_id.encode(), value, [(CONTROL_HEADER, FORGET)]


def is_forget(headers: Any) -> bool:
    """Whether a record's headers (pairs or a mapping; str or bytes names) mark a forget."""
    if not headers:
        return False
    pairs: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if name == CONTROL_HEADER and value in (FORGET, FORGET.decode()):
            return True
    return False


def forgotten_user(headers: Any, value: bytes | None) -> str | None:
    """The user a forget request names, or None when the record is not one."""
    if not is_forget(headers) or not value:
        return None
    try:
        data = json.loads(value)
    except (ValueError, TypeError, RecursionError):
        return None
    user = data.get("forget_user_id") if isinstance(data, dict) else None
    if not isinstance(user, str) or not user:
        return None
    try:
        user.encode("utf-8")  # a lone surrogate cannot be a key: the click parser rejects it
    except UnicodeEncodeError:
        return None
    return user


class ForgetLedger:
    """Forget requests seen while reading ``clicks``: which earlier clicks they erase.

    ``learn_one(user, partition, offset)`` records a request; ``erased(user, partition,
    offset)`` says whether a click at that position precedes a request of its user in the same
    partition (clicks are keyed by user, so all of a user's clicks share one partition).
    """

    def __init__(self) -> None:
        self.requests: dict[str, dict[int, int]] = {}  # user -> partition -> last request offset

    def __len__(self) -> int:
        return len(self.requests)

    def learn_one(self, user_id: str, partition: int, offset: int) -> None:
        by_partition = self.requests.setdefault(user_id, {})
        by_partition[partition] = max(offset, by_partition.get(partition, -1))

    def erased(self, user_id: str, partition: int, offset: int) -> bool:
        last = self.requests.get(user_id, {}).get(partition)
        return last is not None and offset < last
