"""The worker's side of ``streamrec forget USER``: forget requests among the clicks, in order.

A forget request (:mod:`streamrec.core.forget`) arrives on ``clicks`` in the user's partition.
:class:`ForgettingClickHandler` wraps the click handler: it splits a batch at each request
(:func:`split_at_forgets`), hands the clicks before it to the click handler, then forgets the
user everywhere this worker keeps them:

- the ``user-state`` table entry (``del`` sends a tombstone to the changelog, so a restarted
  worker recovers the user as absent);
- their Redis mirrors (``user:<id>:state``, ``user:<id>:recs``);
- the re-ranker's logged candidates of their last list (memory).

Clicks after the request start from an empty state. Handling a request twice (at-least-once)
changes nothing. Aggregates (``trend:*``, ``covis:*``, the re-ranker's weights) hold counts, not
user ids, and are not touched.

>>> from types import SimpleNamespace as Event
>>> from streamrec.core.forget import forget_record
>>> _key, value, headers = forget_record("u1", requested_at_ms=1)
>>> batch = [Event(value=b"c1", headers=[]), Event(value=value, headers=headers),
...          Event(value=b"c2", headers=[])]
>>> [([e.value for e in clicks], user) for clicks, user in split_at_forgets(batch)]
[([b'c1'], 'u1'), ([b'c2'], None)]
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Protocol

from streamrec.core.forget import forgotten_user
from streams.serving_state import forget_user_keys

log = logging.getLogger(__name__)


class ClickHandler(Protocol):
    """What :class:`~streams.handlers.ClickBatchHandler` offers."""

    runtime: Any
    users: MutableMapping[bytes, Any]

    async def handle(self, batch: list[Any]) -> None: ...


def event_headers(event: Any) -> Any:
    """A Faust event's (or a plain record's) headers."""
    headers = getattr(event, "headers", None)
    if headers is None:
        message = getattr(event, "message", None)
        headers = getattr(message, "headers", None)
    return headers


def split_at_forgets(batch: list[Any]) -> list[tuple[list[Any], str | None]]:
    """``[(clicks, forgotten user or None), ...]`` in batch order: each forget request ends a
    segment; the last segment (no request) is present only when it holds clicks."""
    segments: list[tuple[list[Any], str | None]] = []
    clicks: list[Any] = []
    for event in batch:
        user = forgotten_user(event_headers(event), event.value)
        if user is None:
            clicks.append(event)
        else:
            segments.append((clicks, user))
            clicks = []
    if clicks or not segments:
        segments.append((clicks, None))
    return segments


class ForgettingClickHandler:
    """Applies forget requests in order between the click handler's segments."""

    def __init__(self, clicks: ClickHandler) -> None:
        self.clicks = clicks
        self.runtime = clicks.runtime  # its Redis and re-ranker
        self.users = clicks.users  # the user-state table
        self.forgotten = 0  # requests handled (repeats included)

    async def handle(self, batch: list[Any]) -> None:
        for clicks, user in split_at_forgets(batch):
            if clicks:
                await self.clicks.handle(clicks)
            if user is not None:
                await self.forget(user)

    async def forget(self, user_id: str) -> None:
        key = user_id.encode()
        if key in self.users:
            del self.users[key]  # a tombstone in the table's changelog
        self.runtime.reranker.log.forget(user_id)
        try:
            await forget_user_keys(self.runtime.redis, [user_id])
        except Exception as exc:  # Redis down: the mirrors expire (redis.state_ttl_s)
            log.warning("forget: Redis keys of a user not deleted: %s", exc)
        self.forgotten += 1
        log.info("forgot a user (%d requests so far)", self.forgotten)
