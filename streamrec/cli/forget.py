"""``streamrec forget USER...``: erase users from the worker's state, Redis and later retraining.

For each user it puts a forget request on ``clicks`` (:mod:`streamrec.core.forget`: keyed by the
user, so it follows every click of theirs already produced) and deletes their Redis keys at once.
The worker owning the user's partition then deletes the table entry (a changelog tombstone), the
Redis mirrors again (in case a click in flight rewrote them) and their logged candidates
(:mod:`streams.forget`); the trainer's reader of ``clicks`` leaves out every click of the user
before the request (:func:`training.data.read_clicks_from_kafka`). Clicks the user makes after
the request are kept, as a new user's would be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from streamrec.core.config import Settings, UserError


def register(sub: argparse._SubParsersAction) -> None:
    forget = sub.add_parser(
        "forget", help="erase users: table state, Redis keys, and their clicks from retraining")
    forget.add_argument("users", nargs="+", metavar="USER", help="user ids to forget")
    forget.add_argument("--json", action="store_true", help="machine-readable output")
    forget.set_defaults(func=cmd_forget)


def cmd_forget(args: argparse.Namespace) -> int:
    users = list(dict.fromkeys(args.users))
    if any(not u for u in users):
        raise UserError("a user id cannot be empty")
    settings = Settings.from_env().resolved()
    report = asyncio.run(forget_users(settings, users))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for row in report["requests"]:
        print(f"forget {row['user_id']}: request on {report['topic']} partition "
              f"{row['partition']} offset {row['offset']}")
    redis_part = (f"deleted {report['redis_keys_deleted']} Redis key(s)"
                  if report["redis_error"] is None
                  else f"Redis not reached ({report['redis_error']}); the worker deletes them")
    print(f"{redis_part}; the worker drops the table state when it reaches the request, and "
          "retraining leaves out their earlier clicks")
    return 0


async def forget_users(settings: Settings, users: list[str]) -> dict[str, Any]:
    """Send one forget request per user, then delete their Redis keys; returns a report."""
    from streamrec.core.forget import forget_record
    from streams.kafka_io import ensure_topics, start_producer

    topic = settings.kafka.clicks_topic
    await ensure_topics(settings, [topic])
    producer = await start_producer(settings, acks="all")
    requests = []
    try:
        for user in users:
            key, value, headers = forget_record(user)
            sent = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            requests.append({"user_id": user, "partition": sent.partition,
                             "offset": sent.offset})
    finally:
        await producer.stop()
    deleted, error = await _delete_redis_keys(settings, users)
    return {"topic": topic, "requests": requests, "redis_keys_deleted": deleted,
            "redis_error": error}


async def _delete_redis_keys(settings: Settings, users: list[str]) -> tuple[int, str | None]:
    import redis.asyncio as aioredis

    from streams.serving_state import forget_user_keys

    try:
        client = aioredis.from_url(settings.require_redis(), socket_connect_timeout=2.0,
                                   socket_timeout=2.0, **settings.redis_options())
    except UserError as exc:
        return 0, str(exc)
    try:
        return await forget_user_keys(client, users), None
    except Exception as exc:  # Redis down: the worker deletes them when it handles the request
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
