"""Timers: APScheduler jobs that turn the passing of time into events for the supervisor.

Every timer has a key, so re-arming one (a rotation moved by a new login session, a grace period
restarted) replaces it instead of stacking copies. The scheduler sleeps until its next job: an idle
daemon wakes only when something is due.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

Job = Callable[[], Awaitable[Any]]
_LATEST = 253_370_764_800.0  # 9999-01-01T00:00:00Z


def _skipped_tick(record: logging.LogRecord) -> bool:
    """A periodic job still running at its next tick skips that tick by design (max_instances=1:
    a slow queue poll is its own answer). APScheduler says so at WARNING on every tick, which
    would put a non-problem into `journalctl -p warning` all the while Redis is slow."""
    return "maximum number of running instances reached" not in record.getMessage()


class Timers:
    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        # APScheduler logs every run at INFO; that is noise at our cadence.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.scheduler").addFilter(_skipped_tick)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def every(self, key: str, seconds: float, job: Job, *, jitter: float = 0.0) -> None:
        """Run `job` every `seconds` (± `jitter` seconds), first after one interval."""
        trigger = IntervalTrigger(seconds=seconds, jitter=jitter or None, timezone=dt.UTC)
        self._scheduler.add_job(job, trigger, id=key, replace_existing=True)

    def at(self, key: str, when: float, job: Job) -> None:
        """Run `job` once at epoch time `when` (at once if that has passed)."""
        # A date datetime cannot hold (a huge duration setting, a far expiry) waits "forever".
        when = min(max(when, 0.0), _LATEST) if math.isfinite(when) else _LATEST
        run_date = dt.datetime.fromtimestamp(when, dt.UTC)
        self._scheduler.add_job(job, DateTrigger(run_date, dt.UTC), id=key, replace_existing=True)

    def cancel(self, key: str) -> None:
        if self._scheduler.get_job(key) is not None:
            self._scheduler.remove_job(key)
