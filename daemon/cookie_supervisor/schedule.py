"""Timers: the passing of time turned into events for the supervisor, on the event loop's clock.

Two kinds, kept apart because a stepped wall clock (NTP correcting a bad RTC, an operator's
`date -s`, a VM resumed) must stop neither:

- intervals (`every`: the queue poll, the validation period, rescans) run on the loop's monotonic
  clock: a wall clock stepped back an hour delays no poll, stepped forward fires no burst;
- one-shot intervals (`after`: a grace period, a retry wait, a verification deadline, which the
  core measures on the monotonic clock) run on it too;
- dates (`at`: a rotation due, a cookie's expiry) are wall-clock times, slept
  towards on the monotonic clock and re-armed whenever the wall clock is seen to have jumped
  (wall and monotonic time moved apart), and at least every MAX_SLEEP anyway.

Every timer has a key, so re-arming one (a rotation moved by a new login session, a grace period
restarted) replaces it instead of stacking copies. A job still running at its next tick skips that
tick (a slow queue poll is its own answer). Nothing polls: an idle daemon wakes only when
something is due.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]
LATEST = 253_370_764_800.0  # 9999-01-01T00:00:00Z: a later date (or none) waits "forever"
MAX_SLEEP = 3600.0  # a date timer looks at the wall clock again at least this often
JUMP = 1.0  # wall and monotonic clocks moving apart by more than this is a step


@dataclass(slots=True)
class _Interval:
    seconds: float
    jitter: float
    job: Job
    grid: float  # the loop time of the current tick, before jitter


class Timers:
    """Keyed timers on the running loop; `wall` is the wall clock (injectable for tests)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._intervals: dict[str, _Interval] = {}
        self._dates: dict[str, tuple[float, Job]] = {}
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._offset = 0.0  # wall minus monotonic time, at the last look
        self.steps = 0  # wall clock steps seen (for tests and the log)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._offset = self._wall() - self._loop.time()

    def shutdown(self) -> None:
        """Disarm everything; jobs already running finish on their own."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._intervals.clear()
        self._dates.clear()

    def every(self, key: str, seconds: float, job: Job, *, jitter: float = 0.0) -> None:
        """Run `job` every `seconds` of monotonic time (± `jitter`), first after one interval."""
        loop = self._started()
        self.cancel(key)
        interval = _Interval(max(seconds, 0.001), max(jitter, 0.0), job, loop.time())
        self._intervals[key] = interval
        self._next_tick(key, interval)

    def at(self, key: str, when: float, job: Job) -> None:
        """Run `job` once at wall-clock time `when` (at once if that has passed)."""
        self._started()
        self.cancel(key)
        # A date no clock reaches (a huge duration setting, a far expiry, NaN) waits "forever".
        when = min(max(when, 0.0), LATEST) if math.isfinite(when) else LATEST
        self._dates[key] = (when, job)
        self._arm_date(key)

    def after(self, key: str, delay: float, job: Job) -> None:
        """Run `job` once, `delay` seconds of monotonic time from now: an interval the core
        measured on the monotonic clock (a grace period, a retry wait, a verification deadline),
        which no wall clock step moves."""
        loop = self._started()
        self.cancel(key)
        delay = min(max(delay, 0.0), LATEST) if math.isfinite(delay) else LATEST
        self._handles[key] = loop.call_at(loop.time() + delay, self._after_due, key, job)

    def _after_due(self, key: str, job: Job) -> None:
        self._handles.pop(key, None)
        self._run(key, job)

    def cancel(self, key: str) -> None:
        if (handle := self._handles.pop(key, None)) is not None:
            handle.cancel()
        self._intervals.pop(key, None)
        self._dates.pop(key, None)

    # --- intervals: the monotonic clock only ---------------------------------------------------

    def _next_tick(self, key: str, interval: _Interval) -> None:
        loop = self._started()
        interval.grid += interval.seconds
        now = loop.time()
        if interval.grid <= now:  # the loop was held up: the missed ticks are one, from now
            interval.grid = now + interval.seconds
        shift = random.uniform(-interval.jitter, interval.jitter) if interval.jitter else 0.0
        due = max(interval.grid + shift, now)
        self._handles[key] = loop.call_at(due, self._tick, key, interval)

    def _tick(self, key: str, interval: _Interval) -> None:
        if self._intervals.get(key) is not interval:
            return  # replaced or cancelled meanwhile
        self._look_at_wall_clock()
        self._run(key, interval.job)
        self._next_tick(key, interval)

    # --- dates: wall-clock times, slept towards on the monotonic clock --------------------------

    def _arm_date(self, key: str) -> None:
        loop = self._started()
        when, _ = self._dates[key]
        wait = min(max(when - self._wall(), 0.0), MAX_SLEEP)
        self._handles[key] = loop.call_at(loop.time() + wait, self._date_due, key)

    def _date_due(self, key: str) -> None:
        if key not in self._dates:
            return
        self._look_at_wall_clock()
        when, job = self._dates[key]
        if self._wall() < when - 0.001:  # slept MAX_SLEEP, or the clock went back: not yet
            self._arm_date(key)
            return
        self.cancel(key)
        self._run(key, job)

    def _look_at_wall_clock(self) -> None:
        """Re-arm every date timer when the wall clock stepped since the last look."""
        loop = self._started()
        offset = self._wall() - loop.time()
        step, self._offset = offset - self._offset, offset
        if abs(step) <= JUMP:
            return  # a tick's own lateness, or NTP slewing: dates stay where they are
        self.steps += 1
        log.info("wall clock stepped by %+.1fs; date timers re-armed", step)
        for key in list(self._dates):
            if (handle := self._handles.pop(key, None)) is not None:
                handle.cancel()
            self._arm_date(key)

    # --- running a job ---------------------------------------------------------------------------

    def _run(self, key: str, job: Job) -> None:
        running = self._running.get(key)
        if running is not None and not running.done():
            return  # still at it since the last tick: this tick is skipped, by design
        task: asyncio.Task[Any] = self._started().create_task(_call(job), name=f"timer:{key}")
        self._running[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("timer %s failed", key, exc_info=exc)

    def _started(self) -> asyncio.AbstractEventLoop:
        """The loop the timers run on: the running one, taken at the first use."""
        if self._loop is None:
            self.start()
        assert self._loop is not None
        return self._loop


async def _call(job: Job) -> Any:
    return await job()
