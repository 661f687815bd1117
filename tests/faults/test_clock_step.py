"""The wall clock stepped back and forward an hour under a running supervisor (real Redis, real
timers; the wall clock injected): the queue poll, the validations, the Redis checks and the webhook
retries keep their rhythm, because every interval runs on the monotonic clock; what is a date (a
signature's timestamp, a saved retry) follows the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cookie_supervisor import app as app_module
from cookie_supervisor import core
from cookie_supervisor.config import Settings, load_settings
from cookie_supervisor.supervisor import Supervisor
from tests.support import Receiver, RedisServer

POLL = 0.05
VALIDATE = 0.2


class SteppedWall:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def stepped_runtime(settings: Settings) -> tuple[app_module.Runtime, SteppedWall, Redis]:
    """The runtime wired as the daemon wires it, on a wall clock the test steps; and its Redis
    client, for the test to close."""
    redis = app_module.connect_redis(settings)
    wall = SteppedWall()
    return app_module.build(settings, redis, clock=wall), wall, redis


def stepped_supervisor(settings: Settings) -> tuple[Supervisor, SteppedWall, Redis]:
    runtime, wall, redis = stepped_runtime(settings)
    return runtime.supervisor, wall, redis


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
    sup, wall, redis = stepped_supervisor(settings)
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


async def test_webhook_retries_keep_their_rhythm(
    own_redis: RedisServer,
    jar: Path,
    tmp_path: Path,
    receivers: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver in trouble through four steps of an hour: tries go on every backoff, none is
    given up (max_age is an hour: a step forward made the event "an hour old" before), each try
    is signed with the wall clock's date, and the state file holds the next try as a date on the
    wall clock of the moment (not one an hour off)."""
    rx = receivers(script=[(503, {})] * 100_000)
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(jar))
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATION_URLS", "none")
    monkeypatch.setenv("COOKIE_SUPERVISOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COOKIE_SUPERVISOR_WEBHOOK_URL", rx.url())
    monkeypatch.setenv("COOKIE_SUPERVISOR_WEBHOOK_SECRET", "clock-step-secret")
    settings = load_settings()
    runtime, wall, redis = stepped_runtime(settings)  # wired as the daemon wires it
    sup, sender = runtime.supervisor, runtime.sender
    sender.backoff_base, sender.backoff_cap = 0.02, 0.1  # tries every 0.05-0.1 s
    source = next(iter(sup.state.sources))
    sup.timers.start()
    await sup.start()
    sender.start()
    try:
        failed = core.Notify("refresh_failed", source, "job-1", "refresh job 1 failed")
        assert runtime.notifications.notify(failed, sup.poller.scope)
        for step in (-3600.0, +3600.0, +3600.0, -3600.0):
            seen = len(rx.requests)
            await until(lambda seen=seen: len(rx.requests) >= seen + 4, timeout=3)
            wall.offset += step
            signed = len(rx.requests)
            await until(lambda signed=signed: len(rx.requests) > signed, timeout=3)
            stamp = rx.requests[-1].headers["X-Cookie-Supervisor-Signature"]
            t = int(stamp.split(",")[0].removeprefix("t="))
            assert abs(t - wall()) < 5, (t, wall())  # a date: on the wall clock as it is now
        await until(lambda: len(rx.requests) >= 30, timeout=5)
        gaps = [b.at - a.at for a, b in itertools.pairwise(rx.requests)]
        assert max(gaps) < 1.0, max(gaps)  # never a pause anything like the step
        outcomes = sup.metrics.webhook_deliveries_total.values
        retried = ("127.0.0.1", "refresh_failed", "retried")
        await until(lambda: outcomes.get(retried, 0.0) >= 30, timeout=2)  # each try booked
        assert outcomes.get(("127.0.0.1", "refresh_failed", "failed"), 0.0) == 0.0  # not given up
        assert sender.outbox_sizes() == {"127.0.0.1": 1}
        (saved,) = sender.outbox.to_state()
        assert 0 <= saved["next_at"] - wall() <= 0.1 + 1e-3  # at most one backoff from "now"
        assert saved["first_at"] <= wall() and wall() - saved["first_at"] < 30
    finally:
        await sender.aclose()
        sup.timers.shutdown()
        await sup.stop()
        await redis.aclose()


async def test_a_validation_lasts_what_it_took_across_a_step(
    own_redis: RedisServer, jar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step during a validation neither stretches its duration by the hour nor squashes it to
    zero; its start and end stay dates on the wall clock."""
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(jar))
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATION_URLS", "none")
    settings = load_settings()
    sup, wall, redis = stepped_supervisor(settings)
    source = next(iter(sup.state.sources))
    real_inspect = sup.inspect
    steps: list[float] = []

    async def inspect_while_stepping(name: str, **kw: object) -> object:
        report = await real_inspect(name, **kw)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        wall.offset += steps.pop()
        return report

    sup.inspect = inspect_while_stepping  # type: ignore[assignment,method-assign]
    sup.timers.start()
    try:
        for step in (+3600.0, -3600.0):
            steps.append(step)
            v = await sup.run_validation(source, "manual", act=False)
            assert 0.05 <= v.duration < 1.0, v.duration
            assert abs(v.at - wall()) < 1.0  # the end: a date on the wall clock as it is now
    finally:
        sup.timers.shutdown()
        await redis.aclose()
