"""A whole validation of one source: the offline check, then the yt-dlp runs the pipeline asks for
(media probe, account check, a cookie-less probe for the diagnosis), then the verdict.

Nothing is decided here: which run comes next, when the parts are complete and what they say are
the pipeline's pure rules (`next_probe`, `validation_of`, `offline_validation`); this module only
reads the jar and runs yt-dlp, one validation of a source at a time. It needs no Redis, no core
state and no supervisor, so `cookie-supervisor check --local` builds this alone; the daemon hands
it how to look at the file (so the report also reaches the core, in order) and what a standing
diagnosis asks for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cookie_supervisor import cookiefile
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import Settings, SourceSettings
from cookie_supervisor.model import CookieReport, Validation
from cookie_supervisor.probe import (
    ProbeResult,
    detect_js_runtime,
    run_account_check,
    run_probe,
)
from cookie_supervisor.verdict import (
    ProbeRun,
    ProbeSaid,
    next_probe,
    offline_validation,
    plan_validation,
    validation_of,
)

log = logging.getLogger(__name__)

ERROR_LIMIT = 500  # characters of yt-dlp's message kept in a validation
Look = Callable[[], Awaitable[CookieReport]]
Count = Callable[[str, tuple[str, ...]], None]


def _uncounted(metric: str, labels: tuple[str, ...]) -> None:
    return None


class Validator:
    """Runs validations of the configured sources; `count` counts the daemon's own trouble."""

    def __init__(
        self,
        settings: Settings,
        *,
        key: bytes | None = None,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        count: Count = _uncounted,
    ) -> None:
        self.settings = settings
        self.key = key  # keys the session fingerprints (the state file's, in the daemon)
        self.clock = clock  # dates: wall time
        self.mono = mono  # the duration: an interval
        self.count = count
        self.js_runtime = detect_js_runtime(settings.js_runtime)
        self._locks = {cfg.name: asyncio.Lock() for cfg in settings.all_sources()}

    async def read(self, cfg: SourceSettings) -> CookieReport:
        """The jar's report, read off the loop."""
        return await asyncio.to_thread(
            cookiefile.inspect, cfg.cookies_file, self.clock(), key=self.key
        )

    async def validate(
        self,
        cfg: SourceSettings,
        trigger: str,
        *,
        look: Look | None = None,
        diagnose: Callable[[], bool] = lambda: False,
    ) -> Validation:
        """Offline check, then the runs `next_probe` asks for until it wants none. `look` reads
        the jar (default: `read`); `diagnose`, asked once the jar was looked at, whether every
        run probes without cookies too (asked for, or a diagnosis stands)."""
        async with self._locks[cfg.name]:
            began = self.mono()
            started = self.clock()
            report = await (look() if look is not None else self.read(cfg))
            offline = offline_validation(report, cfg.policy(), started, self.clock(), trigger)
            if offline is not None:
                return self._timed(offline, began)
            # a standing diagnosis makes every run probe without cookies too, to confirm or drop
            # it: a daemon without an account check has nothing else that asks for the guest
            plan = plan_validation(cfg.policy(), diagnose())
            said: tuple[ProbeSaid, ...] = ()
            while (run := next_probe(plan, said)) is not None:
                found = await self._run(cfg, run)
                if found.os_error is not None:  # the daemon's own trouble: no verdict at all
                    no = self._no_verdict(cfg.name, started, trigger, found.os_error)
                    return self._timed(no, began)
                said += (
                    ProbeSaid(
                        run.kind, run.url, found.reason, found.message, found.account_cookies
                    ),
                )
            return self._timed(
                validation_of(said, started, self.clock(), trigger, ERROR_LIMIT), began
            )

    def _timed(self, v: Validation, began: float) -> Validation:
        """With the time it took on the monotonic clock: the duration is an interval
        (`validation_duration_seconds`, the answers); its start and end stay dates."""
        return dataclasses.replace(v, took=max(0.0, self.mono() - began))

    def _no_verdict(self, source: str, started: float, trigger: str, errno: str) -> Validation:
        """The daemon's own OS trouble (disk full, file size limit, descriptors, I/O) kept a probe
        from running: no verdict about the cookies, so no failed validation, alert or webhook
        (the core books none for a `read_error`); counted as a probe error instead."""
        self.count("probe_errors_total", (source, errno))
        log.warning(
            "validation of source %s could not run: %s (the daemon's own trouble, no verdict)",
            source,
            errno,
        )
        message = f"the daemon could not run the probe: {errno}"
        return Validation(
            False, Reason.OTHER, started, self.clock(), trigger, message=message, read_error=errno
        )

    async def _run(self, cfg: SourceSettings, run: ProbeRun) -> ProbeResult:
        common: dict[str, Any] = {
            "timeout": cfg.probe_timeout,
            "command": self.settings.yt_dlp_command,
            "js_runtime": self.js_runtime,
            "extra": cfg.ytdlp_args,  # the backend's proxy, PO-token provider, ... (allow-listed)
        }
        if run.kind == "account":
            return await run_account_check(cfg.cookies_file, run.url, **common)
        return await run_probe(
            cfg.cookies_file, run.url, mode=cfg.probe_mode, cookies=run.kind == "media", **common
        )
