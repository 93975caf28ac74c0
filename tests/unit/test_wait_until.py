"""Tests wait for facts: the value once it holds, or a failure naming what never happened."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.support import wait_until, wait_until_async


def test_returns_the_first_truthy_value() -> None:
    polls = itertools.count()
    value = wait_until(lambda: next(polls) >= 3 and "ready", 5, "three polls", interval_s=0)
    assert value == "ready"


def test_timeout_names_what_never_happened_and_the_diagnosis() -> None:
    with pytest.raises(AssertionError, match=r"offsets committed: did not happen within 0.05 s"
                                             r"\nlast seen: \{0: None\}"):
        wait_until(lambda: False, 0.05, "offsets committed", interval_s=0.01,
                   diagnose=lambda: "last seen: {0: None}")


def test_async_variant_awaits_coroutine_conditions() -> None:
    polls = itertools.count()

    async def answered() -> int:
        await asyncio.sleep(0)
        return max(0, next(polls) - 2)

    assert asyncio.run(wait_until_async(answered, 5, "answers", interval_s=0)) == 1
    with pytest.raises(AssertionError, match="never: did not happen"):
        asyncio.run(wait_until_async(lambda: None, 0.05, "never", interval_s=0.01))
