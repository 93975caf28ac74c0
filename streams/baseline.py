"""The anchor of ``streamrec bench e2e``: a plain Faust agent, written the way Faust's
documentation writes one, on the same broker settings as the worker.

Per click: one typed record decoded by Faust, one table write (the user's last items) and one
``await topic.send`` of a list built from that table (the user's recent items, newest first).
It is what a user would write instead of streamrec's worker, so its throughput and CPU per event
are the yardstick the worker is measured against. Run it with ``python -m streams.baseline``;
it reads the same settings (topics, app id, broker profile) as ``streamrec worker``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import faust

from streamrec.core.config import Settings
from streams.app import faust_app

BASELINE_MODEL = "faust-baseline"
HISTORY = 10


class Click(faust.Record, serializer="json"):
    """A ``clicks`` record as Faust's documentation would declare it."""

    event_id: str
    user_id: str
    item_id: str
    type: str = "click"
    ts: int = 0
    rating: float | None = None


def build_baseline_app(settings: Settings) -> faust.App:
    """One agent, one table, one output topic; the broker profile's settings (as the worker)."""
    profile = settings.kafka.broker
    app = faust_app(settings, settings.home / "faust-baseline-data")
    clicks = app.topic(settings.kafka.clicks_topic, value_type=Click)
    recommendations = app.topic(settings.kafka.recommendations_topic, value_serializer="json")
    last_items = app.Table("last-items", default=list, partitions=profile["topic_partitions"])

    @app.agent(clicks)
    async def recommend(stream: Any) -> None:
        async for click in stream:
            history = last_items[click.user_id]
            last_items[click.user_id] = ([click.item_id] + history)[:HISTORY]
            await recommendations.send(key=click.user_id.encode(), value={
                "event_id": click.event_id,
                "user_id": click.user_id,
                "items": history,
                "model": BASELINE_MODEL,
                "generated_at": int(time.time() * 1000),
            })

    return app


def main() -> None:
    from faust.worker import Worker

    settings = Settings.from_env().resolved()
    settings.home.mkdir(parents=True, exist_ok=True)
    app = build_baseline_app(settings)
    Worker(app, loglevel=os.environ.get("BASELINE_LOGLEVEL", "warning"), quiet=True,
           redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
