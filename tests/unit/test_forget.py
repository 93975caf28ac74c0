"""Forget requests: the record, the worker's in-order handling, the trainer's ledger."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streamrec.core.forget import ForgetLedger, forget_record, forgotten_user, is_forget
from streams.forget import ForgettingClickHandler, split_at_forgets
from streams.rerank.candidate_log import CandidateLog, LoggedList


def click(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(value=value, headers=(), message=SimpleNamespace(headers=()))


def forget(user: str) -> SimpleNamespace:
    _key, value, headers = forget_record(user)
    # Faust events carry the Kafka headers as (str, bytes) pairs
    return SimpleNamespace(value=value, headers=tuple(headers))


def test_forget_record_is_recognised_only_with_its_header() -> None:
    key, value, headers = forget_record("u1", requested_at_ms=7)
    assert key == b"u1" and forgotten_user(headers, value) == "u1"
    assert forgotten_user({"streamrec-control": b"forget"}, value) == "u1"
    assert forgotten_user([(b"streamrec-control", "forget")], value) == "u1"
    assert forgotten_user([], value) is None  # a forged value without the header
    assert forgotten_user(headers, b"{not json") is None
    assert forgotten_user(headers, b'{"forget_user_id": 5}') is None
    assert not is_forget([("other", b"forget")]) and not is_forget(None)


def test_ledger_erases_earlier_clicks_of_the_user_in_the_same_partition() -> None:
    ledger = ForgetLedger()
    ledger.learn_one("u", partition=1, offset=50)
    ledger.learn_one("u", partition=1, offset=20)  # an older request changes nothing
    assert ledger.erased("u", 1, 49) and not ledger.erased("u", 1, 51)
    assert not ledger.erased("u", 2, 10) and not ledger.erased("v", 1, 10)
    assert len(ledger) == 1


def test_split_keeps_batch_order() -> None:
    batch = [click(b"a"), forget("u"), forget("v"), click(b"b"), click(b"c")]
    segments = split_at_forgets(batch)
    assert [([e.value for e in c], u) for c, u in segments] == [
        ([b"a"], "u"), ([], "v"), ([b"b", b"c"], None)]
    assert split_at_forgets([]) == [([], None)]


class FakeRedis:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    async def delete(self, *keys: str) -> int:
        return sum(self.keys.pop(k, None) is not None for k in keys)


def test_handler_applies_clicks_then_forgets_in_order() -> None:
    users: dict[bytes, Any] = {b"u": {"n": 1}, b"v": {"n": 2}}
    log = CandidateLog(10)
    log.put("u", LoggedList.empty("ev-1"))
    redis = FakeRedis({"user:u:state": "{}", "user:u:recs": "{}", "user:v:state": "{}"})
    runtime = SimpleNamespace(redis=redis, reranker=SimpleNamespace(log=log))
    seen: list[list[bytes]] = []

    class Clicks:
        def __init__(self) -> None:
            self.runtime, self.users = runtime, users

        async def handle(self, batch: list[Any]) -> None:
            seen.append([e.value for e in batch])
            users[b"u"] = {"n": 99}  # the click before the request wrote u's state

    handler = ForgettingClickHandler(Clicks())
    asyncio.run(handler.handle([click(b"c1"), forget("u"), click(b"c2")]))
    assert seen == [[b"c1"], [b"c2"]]
    # c2's handler ran after the forget and wrote u again: a fresh state, as a new click would
    assert users == {b"u": {"n": 99}, b"v": {"n": 2}}
    assert set(redis.keys) == {"user:v:state"}
    assert "u" not in log.lists and handler.forgotten == 1

    asyncio.run(handler.handle([forget("u"), forget("u")]))  # repeats change nothing more
    assert b"u" not in users and handler.forgotten == 3
