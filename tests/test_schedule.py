"""Timers: intervals on the monotonic clock, dates on the wall clock re-armed when it steps; any time
the core computes is taken (a far or absurd date waits, it never crashes the daemon)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from cookie_supervisor.schedule import Timers


class SteppedWall:
    """The wall clock, with steps an operator (or NTP) would make."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


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


async def test_intervals_keep_their_rhythm_when_the_wall_clock_steps_an_hour() -> None:
    wall = SteppedWall()
    timers = Timers(wall)
    timers.start()
    ticks: list[float] = []

    async def tick() -> None:
        ticks.append(time.monotonic())

    timers.every("poll", 0.05, tick)
    try:
        for step in (-3600.0, +3600.0, +3600.0, -3600.0):
            before = len(ticks)
            await until(lambda before=before: len(ticks) >= before + 4)
            wall.offset += step
        await until(lambda: len(ticks) >= 20)
    finally:
        timers.shutdown()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 1.0, gaps  # never a pause the size of the step (or anything like it)
    assert timers.steps >= 3  # the steps were seen (dates re-armed), intervals unaffected


async def test_a_date_follows_the_wall_clock_when_it_steps() -> None:
    wall = SteppedWall()
    timers = Timers(wall)
    timers.start()
    fired: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            fired.append(name)

        return run

    async def nothing() -> None:
        return None

    timers.every("poll", 0.02, nothing)  # whatever ticks notices a step
    try:
        timers.at("in-an-hour", wall() + 3600.2, job("in-an-hour"))  # type: ignore[arg-type]
        timers.at("soon", wall() + 0.3, job("soon"))  # type: ignore[arg-type]
        wall.offset += 3600.0  # forward: the hour has passed, "soon" too
        await until(lambda: set(fired) == {"in-an-hour", "soon"}, timeout=3)
        timers.at("later", wall() + 0.3, job("later"))  # type: ignore[arg-type]
        wall.offset -= 3600.0  # back: "later" is an hour and 0.3 s away again
        await asyncio.sleep(0.6)  # long enough for it, were it still 0.3 s away
        assert "later" not in fired
        wall.offset += 3600.0
        await until(lambda: "later" in fired, timeout=3)
    finally:
        timers.shutdown()


async def test_a_slow_job_skips_ticks_quietly(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers()
    timers.start()
    started = 0
    release = asyncio.Event()

    async def slow() -> None:
        nonlocal started
        started += 1
        await release.wait()

    with caplog.at_level(logging.DEBUG, logger="cookie_supervisor.schedule"):
        timers.every("slow", 0.01, slow)
        try:
            await until(lambda: started == 1)
            await asyncio.sleep(0.2)  # twenty ticks' window, not a wait for an event
            assert started == 1  # one run at a time; the ticks meanwhile are skipped
            release.set()
            await until(lambda: started >= 2)
        finally:
            timers.shutdown()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_failing_job_is_logged_and_keeps_its_timer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = Timers()
    timers.start()
    runs = 0

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("bug")

    timers.every("broken", 0.01, broken)
    try:
        await until(lambda: runs >= 3)
    finally:
        timers.shutdown()
    assert "timer broken failed" in caplog.text
