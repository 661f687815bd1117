"""The wall clock stepped back and forward an hour under a running supervisor (real Redis, real
timers; the wall clock injected): the queue poll, the validations and the Redis checks keep their
rhythm, because every interval runs on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from cookie_supervisor import app as app_module
from cookie_supervisor.config import load_settings
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.schedule import Timers
from cookie_supervisor.supervisor import Supervisor
from tests.support import RedisServer

POLL = 0.05
VALIDATE = 0.2


class SteppedWall:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_poll_validations_and_redis_checks_keep_their_rhythm(
    own_redis: RedisServer, jar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(jar))
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATION_URLS", "none")  # offline validations
    monkeypatch.setenv("COOKIE_SUPERVISOR_QUEUE_POLL_INTERVAL", str(POLL))
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATE_EVERY", str(VALIDATE))
    monkeypatch.setenv("COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX", "0.2")
    settings = load_settings()
    redis = app_module.connect_redis(settings)
    wall = SteppedWall()
    queue = app_module.build_supervisor(settings, redis).queue
    sup = Supervisor(settings, Metrics(), queue, Timers(wall), clock=wall)
    polls: list[float] = []
    real_poll = sup.poll_queue

    async def poll() -> None:
        polls.append(time.monotonic())
        await real_poll()

    sup.poll_queue = poll  # type: ignore[method-assign]
    validations = sup.metrics.validation_runs_total

    def validated() -> float:
        return sum(validations.values.values())

    sup.timers.start()
    await sup.start()
    try:
        for step in (-3600.0, +3600.0, +3600.0, -3600.0):
            seen, checked = len(polls), validated()
            # within a few intervals of each step: polls and validations go on
            await until(lambda seen=seen: len(polls) >= seen + 5, timeout=2)
            await until(lambda checked=checked: validated() >= checked + 2, timeout=3)
            wall.offset += step
        # Redis goes away, the clock steps back an hour, Redis returns: seen within the backoff
        own_redis.stop()
        await until(lambda: sup.state.redis_up is False, timeout=5)
        wall.offset -= 3600.0
        own_redis.start()
        await until(lambda: sup.state.redis_up is True, timeout=3)
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert max(gaps) < 2.0, max(gaps)  # never a pause anything like the step
        assert sup.timers.steps >= 4
    finally:
        sup.timers.shutdown()
        await sup.stop()
        await redis.aclose()
