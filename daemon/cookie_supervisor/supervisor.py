"""The runtime: turns what happened into events for the core and carries out the effects it returns.

Every decision is in `core/`. This module reads files, runs validations (validator.py), talks
to Redis (bull.py), arms timers, counts, logs and notifies — and feeds each result back into the
core as an event; the queue poll (poller.py) feeds it what Redis holds. It is wired by
construction: nothing is assigned into it from outside. A `RedisError` is caught by the outage's
`guard` (redisconn.Outage), where it becomes the `RedisDown` event, and in `queue_counts`, a read
the API makes on demand: its failure is answered (503), not acted on.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from cookie_supervisor import core
from cookie_supervisor.background import Background
from cookie_supervisor.bull import BullQueue, JobOptions, job_data
from cookie_supervisor.config import Settings
from cookie_supervisor.core import Answer
from cookie_supervisor.memory import CoreMemory
from cookie_supervisor.metrics import Metrics, state_gauges
from cookie_supervisor.model import CookieReport, Validation
from cookie_supervisor.poller import QueuePoller
from cookie_supervisor.redisconn import Outage
from cookie_supervisor.schedule import Timers
from cookie_supervisor.state import Saver
from cookie_supervisor.validator import ERROR_LIMIT, Validator
from cookie_supervisor.views import StateView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Sink:
    """Where what the core tells goes: counts and observations to the metrics; a notification
    (with the scope its event id is derived in) to whoever delivers it, which answers True when
    it is now owed somewhere (an outbox): it is then on disk before anything goes on, so a
    SIGKILL right after cannot lose it."""

    metrics: Metrics
    notify: Callable[[core.Notify, str], bool]


class Supervisor(StateView):
    """Wired by construction: the queue (Redis), the timers, the state file's saver (which holds
    the core's state it persists), the validator, the sink. What the API and the CLI read of
    the core's state is its `StateView` (views.py)."""

    def __init__(
        self,
        settings: Settings,
        queue: BullQueue,
        timers: Timers,
        store: Saver[CoreMemory],
        validator: Validator,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(store.memory.state, clock, mono)
        self.settings = settings
        self.queue = queue
        self.timers = timers
        self.saver = store
        self.validator = validator
        self.sink = sink
        self.metrics = sink.metrics
        # The runtime's settings of each source (probe, brakes, schedule); the core sees only
        # their policy.
        self.source_settings = {s.name: s for s in settings.all_sources()}
        self.host = socket.gethostname()
        self.job_options = JobOptions(
            attempts=settings.job_attempts,
            backoff_ms=int(settings.job_backoff * 1000),
            keep=settings.job_keep,
        )
        # A RedisError in an effect becomes the core's RedisDown event (the outage's `guard`).
        self.outage = Outage(settings.redis_url, settings.redis_backoff_max, self._redis_down, mono)
        self.poller = QueuePoller(queue, self.state, self.outage, self.handle, self.host, mono)
        self.background = Background()
        self._inspect_locks = {name: asyncio.Lock() for name in self.state.sources}
        self.started = False  # every file inspected once, every timer armed
        self.metrics.register(state_gauges(self.state, clock, settings.queue))
        for name in self.state.sources:
            self.metrics.init_source(name)

    # --- reads the API makes (the state's are StateView's) --------------------------------------

    async def queue_counts(self) -> dict[str, int] | None:
        """Bull's job counts by state, or None when Redis does not answer."""
        try:
            return (await self.queue.counts()).as_dict()
        except RedisError:
            return None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.poll_queue()  # first: what the files call for depends on the queue
        for name in self.state.sources:
            await self.inspect(name)
        self.timers.every("queue-poll", self.settings.queue_poll_interval, self.poll_queue)
        for name, cfg in self.source_settings.items():  # each source's scheduled validation
            if (every := cfg.validate_every) > 0:
                fire, jitter = self._fire(name, "validate"), every * cfg.validate_jitter
                self.timers.every(f"validate:{name}", every, fire, jitter=jitter)
            await self.handle(core.TimerFired(name, "validate"))
        self.started = True

    async def stop(self) -> None:
        await self.background.aclose()
        await self.saver.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background; its failure is logged, never lost."""
        self.background.spawn(coro)

    # --- events in, effects out ----------------------------------------------------------------

    async def handle(self, event: core.Event) -> Answer | None:
        """Feed one event to the core and carry out what it decides, in order."""
        answer: Answer | None = None
        for fx in core.step(self.state, event, self.now()):
            # The effects every trigger brings are carried out here, without a coroutine each
            # (a coalesced trigger is two counts and an answer); `_carry_out` does the others.
            if isinstance(fx, core.Count):
                self.metrics.count(fx.metric, fx.labels)
            elif isinstance(fx, core.Answer):
                answer = fx
            else:
                answer = await self._carry_out(fx) or answer
        return answer

    async def _carry_out(self, fx: core.Effect) -> Answer | None:
        match fx:
            case core.Observe():
                self.metrics.observe(fx.metric, fx.source, fx.value)
            case core.Enqueue():
                return await self._enqueue(fx)
            case core.RunValidation():
                self.spawn(self._validation(fx))
            case core.Inspect():
                self.spawn(self.inspect(fx.source))
            case core.Arm():
                key, job = f"{fx.key}:{fx.source}", self._fire(fx.source, fx.key)
                if fx.key in core.WALL_TIMERS:  # a date
                    self.timers.at(key, fx.at, job)
                else:  # an interval, on the monotonic clock the core measured it on
                    self.timers.after(key, fx.at - self.mono(), job)
            case core.Cancel():
                self.timers.cancel(f"{fx.key}:{fx.source}")
            case core.Log():
                log.log(fx.level, fx.message, extra=fx.fields)
            case core.Notify():
                if self.sink.notify(fx, self.poller.scope):
                    await self.saver.now()
            case core.RecordOutcome():
                await self._record_outcome(fx)
            case core.ResetBackoff():
                await self.outage.guard(self.queue.reset_backoff(fx.source))
            case core.ShareDiagnosis():
                value = fx.diagnosis.value if fx.diagnosis else None
                await self.outage.guard(self.queue.share_diagnosis(fx.source, value, fx.ttl))
            case core.Persist():
                self.saver.soon()
        return None

    def _fire(self, source: str, key: core.TimerKey) -> Callable[[], Awaitable[Any]]:
        async def fire() -> None:
            await self.handle(core.TimerFired(source, key))

        return fire

    async def _redis_down(self, why: str) -> None:
        await self.handle(core.RedisDown(why))

    # --- the cookie file -------------------------------------------------------------------------

    def file_event(self, source: str) -> None:
        """The watcher saw a burst of changes (or the rescan wants a look)."""
        self.spawn(self.inspect(source))

    async def inspect(self, source: str, *, act: bool = True) -> CookieReport:
        """Read the file off the loop; with `act`, hand the report to the core."""
        cfg = self.source_settings[self.source(source).name]
        async with self._inspect_locks[source]:  # reports are applied in the order they were taken
            report = await self.validator.read(cfg)
            if act:
                await self.handle(core.FileInspected(source, report))
        return report

    # --- validation ----------------------------------------------------------------------------

    async def _validation(self, fx: core.RunValidation) -> None:
        v = await self.run_validation(fx.source, fx.trigger, diagnose=fx.diagnose)
        await self.handle(core.ValidationFinished(fx.source, v))

    async def validate(self, source: str, trigger: str) -> Validation:
        """A validation someone asked for (API, CLI): run now, booked like any other."""
        v = await self.run_validation(source, trigger)
        await self.handle(core.ValidationFinished(source, v))
        return v

    async def run_validation(
        self, source: str, trigger: str, *, diagnose: bool = False, act: bool = True
    ) -> Validation:
        """A whole validation (the validator's); the file's report reaches the core on the way.
        Without `act` the report is not handed to the core either."""
        src = self.source(source)
        return await self.validator.validate(
            self.source_settings[source],
            trigger,
            look=lambda: self.inspect(source, act=act),
            # read once the file was looked at: a diagnosis may have come or gone meanwhile
            diagnose=lambda: diagnose or src.diagnosis is not None,
        )

    # --- refresh requests ----------------------------------------------------------------------

    async def request(
        self,
        source: str,
        reason_text: str,
        *,
        origin: core.Origin,
        error: str | None = None,
        video_id: str | None = None,
        force: bool = False,
    ) -> Answer:
        """A refresh asked for by the backend or a person, in their words."""
        self.source(source)
        reason = core.resolve_reason(reason_text, error)
        detail = reason_text if reason_text != reason.value else None
        ask = core.RefreshAsked(source, reason, origin, force, error, video_id, detail)
        answer = await self.handle(ask)
        assert answer is not None, "the core answers every RefreshAsked"
        return answer

    async def _enqueue(self, fx: core.Enqueue) -> Answer | None:
        cfg = self.source_settings[fx.source]
        data = job_data(fx, str(cfg.cookies_file), self.clock(), self.host, ERROR_LIMIT)
        result = await self.outage.guard(
            self.queue.request_refresh(
                fx.source,
                data,
                self.job_options,
                cooldown_s=cfg.refresh_cooldown,
                force=fx.force,
                default_source=fx.source == self.state.default_source,
            )
        )
        asked = (fx.source, fx.reason, fx.origin)
        if result is None:
            return await self.handle(core.RefreshAnswered(*asked, "deferred"))
        state, job_id, wait = result.state, result.job_id, result.retry_after
        return await self.handle(core.RefreshAnswered(*asked, state, job_id, wait, fx.force))

    async def _record_outcome(self, fx: core.RecordOutcome) -> None:
        cfg = self.source_settings[fx.source]
        found = await self.outage.guard(
            self.queue.record_refresh_outcome(
                fx.source,
                fx.job_id or "",
                fx.ok,
                base_s=cfg.refresh_backoff,
                max_s=cfg.refresh_backoff_max,
            )
        )
        if found is not None:
            await self.handle(core.BackoffObserved(fx.source, found.failures, found.until))

    # --- the queue -----------------------------------------------------------------------------

    async def poll_queue(self) -> None:
        """One look at the queue (poller.py); also how Redis outages end."""
        await self.poller.poll()
