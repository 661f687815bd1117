"""Timers take any time the core computes: a far or absurd date waits, it never crashes the daemon."""

from __future__ import annotations

import asyncio
import time

import pytest

from cookie_supervisor.schedule import Timers


@pytest.mark.parametrize("when", [1e300, float("inf"), float("nan"), 253_402_300_800.0 * 10])
async def test_out_of_range_times_are_armed_far_away(when: float) -> None:
    timers = Timers()
    timers.start()
    fired = asyncio.Event()

    async def job() -> None:
        fired.set()

    try:
        timers.at("far", when, job)
        timers.at("now", time.time() - 5, job)  # in the past: at once
        await asyncio.wait_for(fired.wait(), 5)
        fired.clear()
        timers.cancel("far")
    finally:
        timers.shutdown()
