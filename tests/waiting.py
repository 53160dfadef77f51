"""Waiting on a condition in async tests: a generous overall timeout, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

TIMEOUT = 60.0
POLL = 0.01


async def wait_until(condition: Callable[[], bool], what: Callable[[], str]) -> None:
    """Return as soon as ``condition()`` holds; fail after ``TIMEOUT`` seconds saying ``what()`` was seen.

    Polling only decides how soon the test notices; the timeout only bounds a test that would
    otherwise hang. Neither is how long something is assumed to take. (Polling, because the
    conditions are counters of the library's objects, which offer no event to wait on.)
    """
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"not reached in {TIMEOUT:g}s: {what()}") from None
