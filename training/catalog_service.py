"""``streamrec catalog``: the one catalogue publisher. New items become model versions.

Exactly one catalogue service runs per deployment (docker-compose runs one replica, like the
trainer): it is the only process that publishes catalogue versions, so versions never race. The
workers only follow versions; they keep applying item metadata and deactivations to their own
catalogue, but never publish.

The service consumes the ``items`` topic with its own consumer group (``<app_id>-catalog``),
collects the active items with text that the live version does not know yet, and after a short
wait (``flush_s`` after the first new item, so that a burst becomes one version) publishes the
next version with their rows (:func:`training.catalog.refresh_latest`: embedded with the one text
encoder, appended to the item table, published atomically). Each published version is announced
as a ``catalog_refresh`` event on ``model-events``. Triton loads it (poll mode) and every
worker's client switches to it.

Offsets are committed only when every item read is in the live version or published, so a
restart re-reads what was still pending; items the live version knows are skipped, which makes
re-reading harmless (at-least-once, no duplicate rows).

The core, :class:`CatalogRefresher`, knows nothing about Kafka:

>>> from streamrec.core.events import CatalogItem
>>> refresher = CatalogRefresher(Path("/nonexistent"), "sasrec")
>>> _ = refresher.learn_one(CatalogItem("n1", title="Red Fox", text="a fox story"))
>>> _ = refresher.learn_one(CatalogItem("n2", title="", text=""))  # no text: nothing to embed
>>> _ = refresher.learn_one(CatalogItem("n3", title="Gone")).learn_one(
...     CatalogItem("n3", active=False))  # withdrawn before it was published
>>> sorted(refresher.pending)
['n1']
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core import versions
from streamrec.core.events import CatalogItem, parse_item
from streams.feedback import model_event
from streams.kafka_io import ensure_topics, start_consumer, start_producer
from training.catalog import TextEncoderLike, base_version, default_text_encoder, refresh_latest

log = logging.getLogger(__name__)

CATALOG_REFRESH = "catalog_refresh"  # the event type on ``model-events``


def item_text(item: CatalogItem) -> str:
    """The text an item is embedded from; training's text (title, text, genres) when it has a
    title or text, else "" (categories alone say too little to place an item)."""
    from training.pipeline import item_text as training_text

    if not (item.title.strip() or item.text.strip()):
        return ""
    return training_text(item.title, item.text, item.categories)


@dataclass(frozen=True)
class CatalogVersion:
    """A version the catalogue service published: its number, its parent, the items added."""

    version: int
    parent: int | None
    added: list[str]


class CatalogRefresher:
    """Collects new items and publishes them as the next model version.

    ``learn_one(item)`` keeps an active item with text that the live version does not know (a
    deactivation drops it again); :attr:`pending` is what the next version will add;
    ``publish()`` builds and publishes that version (None when nothing was new). A failed
    publish keeps the items pending for the next try.
    """

    def __init__(self, model_repository: Path, model_name: str,
                 encoder: TextEncoderLike | None = None,
                 keep_versions: int | None = None) -> None:
        self.model_repository = Path(model_repository)
        self.model_name = model_name
        self.encoder = encoder
        self.keep_versions = keep_versions  # prune after each publish (None: never)
        self._pending: dict[str, str] = {}
        self._known_version: int | None = None
        self._known: versions.Vocabulary | None = None

    @property
    def model_dir(self) -> Path:
        return self.model_repository / self.model_name

    @property
    def pending(self) -> dict[str, str]:
        """{item_id: text} of the items the next version will add."""
        return dict(self._pending)

    def follow_live(self) -> int | None:
        """Load the live version's vocabulary if the live version changed; return it."""
        live = base_version(self.model_dir, self.model_repository)
        if live != self._known_version:
            self._known_version = live
            self._known = (versions.Vocabulary.load(self.model_dir / str(live))
                           if live is not None else None)
        return live

    def knows(self, item_id: str) -> bool:
        return self._known is not None and item_id in self._known.index_of

    def learn_one(self, item: CatalogItem) -> CatalogRefresher:
        if not item.active:
            self._pending.pop(item.item_id, None)
            return self
        text = item_text(item)
        if text and not self.knows(item.item_id):
            self._pending[item.item_id] = text
        return self

    def publish(self) -> CatalogVersion | None:
        """Publish the pending items as the next version (None when none of them is new)."""
        pending, self._pending = self._pending, {}
        if not pending:
            return None
        try:
            if self.encoder is None:  # the exported MiniLM, loaded once
                self.encoder = default_text_encoder(self.model_repository)
            parent = self.follow_live()
            new = {i: t for i, t in pending.items() if not self.knows(i)}
            version = refresh_latest(self.model_dir, new, self.encoder,
                                     model_repository=self.model_repository) if new else None
        except BaseException:
            self._pending = {**pending, **self._pending}
            raise
        if version is None:
            return None
        if self.keep_versions is not None:
            versions.prune_after_publish(self.model_repository, self.model_name,
                                         self.keep_versions)
        self.follow_live()
        return CatalogVersion(version, parent, [i for i in new if self.knows(i)])


class CatalogService:
    """The Kafka loop around a :class:`CatalogRefresher` (``streamrec catalog``)."""

    def __init__(self, settings: Any, refresher: CatalogRefresher | None = None, *,
                 flush_s: float = 1.0, retry_s: float = 10.0) -> None:
        self.settings = settings
        self.refresher = refresher or CatalogRefresher(
            settings.triton.model_repository, settings.triton.model_name,
            keep_versions=settings.triton.keep_versions)
        self.flush_s = flush_s
        self.retry_s = retry_s
        self.published: list[dict[str, Any]] = []

    def announce(self, published: CatalogVersion) -> dict[str, Any]:
        """The ``catalog_refresh`` event for a published version."""

        name = self.refresher.model_name
        event = model_event(
            CATALOG_REFRESH, source="catalog", version=published.version,
            model=f"{name}:{published.version}", parent_version=published.parent,
            added=len(published.added), sample=published.added[:10],
        )
        self.published.append(event)
        log.warning("model-events: %s", event)
        return event

    async def run(self, *, max_versions: int | None = None) -> None:
        """Consume ``items`` and publish until cancelled (or ``max_versions`` published)."""

        kafka = self.settings.kafka
        await ensure_topics(self.settings, [kafka.items_topic, kafka.model_events_topic])
        producer = await start_producer(self.settings)
        consumer = await start_consumer(
            self.settings, kafka.items_topic, group=f"{self.settings.worker.app_id}-catalog",
            from_beginning=True, auto_commit=False)
        refresher = self.refresher
        due_at: float | None = None  # when the pending items are published
        try:
            while max_versions is None or len(self.published) < max_versions:
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                if batches:
                    await asyncio.to_thread(refresher.follow_live)
                for messages in batches.values():
                    for message in messages:
                        item = parse_item(message.value)
                        if isinstance(item, CatalogItem):
                            refresher.learn_one(item)
                if not refresher.pending:  # every item read is known or published
                    due_at = None
                    if batches:
                        await consumer.commit()
                    continue
                now = time.monotonic()
                if due_at is None:  # the first new item: give the burst ``flush_s`` to arrive
                    due_at = now + self.flush_s
                if now < due_at:
                    continue
                try:
                    published = await asyncio.to_thread(refresher.publish)
                except Exception as exc:  # no version or no text encoder yet: try again later
                    log.warning("catalogue refresh of %d items failed (retry in %.0f s): %s",
                                len(refresher.pending), self.retry_s, exc)
                    due_at = now + self.retry_s
                    continue
                due_at = None
                if published is not None:
                    event = self.announce(published)
                    await producer.send_and_wait(kafka.model_events_topic,
                                                 json.dumps(event).encode(),
                                                 key=CATALOG_REFRESH.encode())
                if not refresher.pending:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()
