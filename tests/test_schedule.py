"""Timers take any time the core computes: a far or absurd date waits, it never crashes the daemon."""

from __future__ import annotations

import asyncio
import logging
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


def test_a_skipped_tick_of_a_slow_job_is_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    Timers()
    lib = logging.getLogger("apscheduler.scheduler")
    with caplog.at_level(logging.WARNING):
        lib.warning(
            'Execution of job "Supervisor.poll_queue (trigger: interval[0:00:00.100000], next run '
            'at: 2026-12-02 06:48:33 UTC)" skipped: maximum number of running instances reached (1)'
        )
        lib.warning("Run time of job was missed by 0:00:05")
    assert [r.getMessage() for r in caplog.records] == ["Run time of job was missed by 0:00:05"]
