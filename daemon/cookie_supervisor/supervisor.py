"""Per-source state and every decision: what an event means and what to do about it.

Events come in (a file changed, a timer fired, the API asked, a probe finished, the queue moved);
effects go out (a Bull job, metrics, a log line). Nothing here listens to files or sockets itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from cookie_supervisor import cookiefile
from cookie_supervisor.bull import BullQueue, FinishedJob, JobOptions, RefreshResult
from cookie_supervisor.classify import Reason, classify, redact, strongest
from cookie_supervisor.config import Settings, SourceSettings
from cookie_supervisor.cookiefile import CookieReport
from cookie_supervisor.metrics import VALIDATION_OK, Metrics
from cookie_supervisor.probe import ProbeResult, detect_js_runtime, run_probe
from cookie_supervisor.schedule import Timers

log = logging.getLogger(__name__)

HISTORY = 20
ERROR_LIMIT = 500
TriggerState = Literal["enqueued", "coalesced", "cooldown", "deferred", "ignored"]
Origin = Literal["api", "cli", "validation", "file", "rotation", "owed"]


@dataclass(frozen=True, slots=True)
class Validation:
    ok: bool
    reason: Reason | None
    at: float
    duration: float
    trigger: str
    url: str | None = None
    message: str = ""
    account_cookies: bool = False
    offline: bool = False

    @property
    def conclusive(self) -> bool:
        """Says something about the cookies: a pass, or a failure fresh cookies would fix."""
        return self.ok or (self.reason is not None and self.reason.fixable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason.value if self.reason else None,
            "fixable": bool(self.reason and self.reason.fixable),
            "at": self.at,
            "duration_seconds": round(self.duration, 3),
            "trigger": self.trigger,
            "url": self.url,
            "offline": self.offline,
            "account_cookies": self.account_cookies,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class TriggerOutcome:
    state: TriggerState
    source: str
    reason: Reason
    message: str
    job_id: str | None = None
    retry_after: float | None = None

    @property
    def triggered(self) -> bool:
        return self.state != "ignored"


@dataclass(slots=True)
class _Verification:
    job_id: str
    since: float  # a file change after this counts as the refresh's upload
    deadline: float
    uploaded: bool = False


@dataclass(slots=True)
class SourceState:
    settings: SourceSettings
    report: CookieReport | None = None
    session_changed_at: float | None = None
    last_change_at: float | None = None
    missing_since: float | None = None
    invalid_since: float | None = None
    rotation: tuple[float, Reason] | None = None
    owed: Reason | None = None
    owed_force: bool = False
    pending_job: str | None = None
    requested: dict[str, float] = field(default_factory=dict)  # job id → when we enqueued it
    last_validation: Validation | None = None
    verifying: _Verification | None = None
    history: deque[FinishedJob] = field(default_factory=lambda: deque(maxlen=HISTORY))
    inspect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    validate_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.settings.name


class UnknownSource(KeyError):
    pass


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        queue: BullQueue,
        timers: Timers,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.queue = queue
        self.timers = timers
        self.clock = clock
        self.sources = {s.name: SourceState(s) for s in settings.all_sources()}
        self.host = socket.gethostname()
        self.js_runtime = detect_js_runtime(settings.js_runtime)
        self.job_options = JobOptions(
            attempts=settings.job_attempts,
            backoff_ms=int(settings.job_backoff * 1000),
            keep=settings.job_keep,
        )
        self.redis_up = False
        self.counts: dict[str, int] | None = None
        self._redis_failures = 0
        self._redis_retry_at = 0.0
        self._backoff = ExponentialWithJitterBackoff(cap=settings.redis_backoff_max, base=0.5)
        self._finished_cursor: int | None = None  # ms; None until history was recovered
        self._finished_seen: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        for st in self.sources.values():
            self.metrics.init_source(st.name, _mtime_of(st))
        await self.poll_queue()  # first: what the files trigger needs to know if Redis is there
        for st in self.sources.values():
            await self.inspect(st.name, initial=True)
        self.timers.every("queue-poll", self.settings.queue_poll_interval, self.poll_queue)
        for st in self.sources.values():
            every = st.settings.validate_every
            if every > 0:
                job = _bind(self.validate, st.name, "schedule")
                self.timers.every(
                    f"validate:{st.name}", every, job, jitter=every * st.settings.validate_jitter
                )
            self.spawn(self.validate(st.name, "start"))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task failed", exc_info=exc)

    def state(self, source: str) -> SourceState:
        try:
            return self.sources[source]
        except KeyError:
            raise UnknownSource(source) from None

    # --- the cookie file -----------------------------------------------------------------------

    def file_event(self, source: str) -> None:
        """The watcher saw a burst of changes (or the rescan wants a look)."""
        self.spawn(self.inspect(source))

    async def inspect(self, source: str, *, initial: bool = False) -> CookieReport:
        st = self.state(source)
        async with st.inspect_lock:  # reports must be applied in the order they were taken
            report = await asyncio.to_thread(cookiefile.inspect, st.settings.cookies_file)
            previous, st.report = st.report, report
            changed = not initial and _signature(previous) != _signature(report)
            self._apply_report(st, report, previous, changed=changed)
        return report

    def _apply_report(
        self, st: SourceState, report: CookieReport, previous: CookieReport | None, *, changed: bool
    ) -> None:
        now = self.clock()
        self._export_file(st.name, report)
        new_session = self._track_session(st, report, previous, now)
        self._track_absence(st, report, now)
        self._schedule_rotation(st)
        if not changed:
            return
        self.metrics.file_changes_total.labels(st.name).inc()
        st.last_change_at = now
        log.info(
            "cookie file changed",
            extra={
                "source": st.name,
                "exists": report.exists,
                "valid": report.valid,
                "logged_in": report.logged_in,
                "new_session": new_session,
            },
        )
        problem = report.problem()
        if problem in (Reason.LOGGED_OUT, Reason.EXPIRED):
            # YouTube cleared the session and the backend's yt-dlp saved that: no probe needed.
            self.spawn(self.trigger(st.name, problem, origin="file"))
        if st.verifying and report.valid:
            st.verifying.uploaded = True
        if report.valid and (new_session or st.verifying):
            # The backend's yt-dlp rewrites the file after every download: a rewrite of the same
            # session is not new evidence, and validating each would hammer YouTube.
            self.spawn(self.validate(st.name, "file"))

    def _export_file(self, source: str, r: CookieReport) -> None:
        m = self.metrics
        m.file_present.labels(source).set(1 if r.exists else 0)
        m.file_size_bytes.labels(source).set(r.size or 0)
        m.file_modified_timestamp_seconds.labels(source).set(r.mtime or 0)
        m.file_cookies.labels(source).set(r.cookies)
        m.file_login_cookies.labels(source).set(len(r.login_cookies))
        m.file_malformed_lines.labels(source).set(r.malformed_lines)
        m.logged_in.labels(source).set(1 if r.logged_in else 0)
        if r.secure_permissions is None:
            _remove(m.file_secure_permissions, source)
        else:
            m.file_secure_permissions.labels(source).set(1 if r.secure_permissions else 0)
        if r.login_expires_at is None:
            _remove(m.login_expiry_timestamp_seconds, source)
        else:
            m.login_expiry_timestamp_seconds.labels(source).set(r.login_expires_at)

    def _track_session(
        self, st: SourceState, report: CookieReport, previous: CookieReport | None, now: float
    ) -> bool:
        """True when the report shows a login session that was not there before."""
        old = previous.fingerprint if previous else None
        if report.fingerprint is None or report.fingerprint == old:
            return False
        first = st.session_changed_at is None
        # The first session this process sees arrived, at best guess, when the file was written.
        st.session_changed_at = (report.mtime or now) if first else now
        self.metrics.login_session_changed_timestamp_seconds.labels(st.name).set(
            st.session_changed_at
        )
        return not first

    def _track_absence(self, st: SourceState, report: CookieReport, now: float) -> None:
        """Missing or unparseable files get a grace period: uploads delete, rename and truncate."""
        cfg = st.settings
        if report.exists:
            st.missing_since = None
            self.timers.cancel(f"missing:{st.name}")
        elif st.missing_since is None:
            st.missing_since = now
            self.timers.at(
                f"missing:{st.name}", now + cfg.missing_grace, _bind(self._grace_over, st.name)
            )
        if report.exists and report.error is not None:
            if st.invalid_since is None:
                st.invalid_since = now
                self.timers.at(
                    f"corrupt:{st.name}", now + cfg.corrupt_grace, _bind(self._grace_over, st.name)
                )
        else:
            st.invalid_since = None
            self.timers.cancel(f"corrupt:{st.name}")

    async def _grace_over(self, source: str) -> None:
        report = await self.inspect(source)
        problem = report.problem()
        if problem in (Reason.MISSING_COOKIES, Reason.CORRUPT_COOKIES):
            log.warning(
                "cookie file unusable past its grace",
                extra={"source": source, "reason": problem.value},
            )
            await self.trigger(source, problem, origin="file")

    # --- rotation ----------------------------------------------------------------------------

    def _rotation_plan(self, st: SourceState) -> tuple[float, Reason] | None:
        cfg, r = st.settings, st.report
        if r is None or not r.logged_in:
            return None
        plans = []
        # Age of the login session, not of the file: the backend's yt-dlp rewrites the file
        # after every download, so its mtime says nothing about how old the cookies are.
        if cfg.rotate_after > 0 and st.session_changed_at is not None:
            plans.append((st.session_changed_at + cfg.rotate_after, Reason.SCHEDULED_ROTATION))
        if cfg.renew_before > 0 and r.login_expires_at is not None:
            plans.append((r.login_expires_at - cfg.renew_before, Reason.EXPIRING_SOON))
        return min(plans) if plans else None

    def _schedule_rotation(self, st: SourceState) -> None:
        plan = self._rotation_plan(st)
        if plan == st.rotation:
            return
        st.rotation = plan
        if plan is None:
            self.timers.cancel(f"rotate:{st.name}")
            _remove(self.metrics.rotation_due_timestamp_seconds, st.name)
            return
        self.metrics.rotation_due_timestamp_seconds.labels(st.name).set(plan[0])
        self.timers.at(f"rotate:{st.name}", plan[0], _bind(self._rotation_due, st.name))

    async def _rotation_due(self, source: str) -> None:
        st = self.state(source)
        plan = self._rotation_plan(st)
        if plan is None or plan[0] > self.clock() + 1:
            return  # a new session moved the date; _schedule_rotation has re-armed the timer
        due, reason = plan
        try:
            # Several daemons on one Redis: one of them takes the decision for this due date.
            lease = f"rotation:{source}:{int(due)}"
            if not await self.queue.claim(lease, max(st.settings.refresh_cooldown, 60.0)):
                log.info("rotation taken by another daemon", extra={"source": source})
                return
        except RedisError as exc:
            self._redis_down(exc)
        await self.trigger(source, reason, origin="rotation")

    # --- validation --------------------------------------------------------------------------

    async def validate(self, source: str, trigger: str) -> Validation:
        st = self.state(source)
        async with st.validate_lock:
            result = await self.run_validation(source, trigger)
            self._record_validation(st, result)
        await self._after_validation(st, result)
        return result

    async def run_validation(self, source: str, trigger: str) -> Validation:
        """One validation, offline check first; it records and decides nothing (see validate)."""
        st = self.state(source)
        report = await self.inspect(source)
        started = self.clock()
        if (problem := report.problem()) is not None:
            return Validation(
                False,
                problem,
                self.clock(),
                0.0,
                trigger,
                offline=True,
                message=f"offline check: {problem.value}",
            )
        urls = st.settings.validation_urls
        if not urls:  # validation downloads turned off: the offline check is all there is
            return Validation(True, None, self.clock(), 0.0, trigger, offline=True)
        probe: ProbeResult | None = None
        for url in urls:
            probe = await run_probe(
                st.settings.cookies_file,
                url,
                mode=st.settings.probe_mode,
                timeout=st.settings.probe_timeout,
                command=self.settings.yt_dlp_command,
                js_runtime=self.js_runtime,
            )
            if probe.ok or probe.fixable:
                break  # conclusive; a removed video or an outage lets the next URL speak
        assert probe is not None
        return Validation(
            probe.ok,
            probe.reason,
            self.clock(),
            self.clock() - started,
            trigger,
            url=probe.url,
            message=probe.message,
            account_cookies=probe.account_cookies,
        )

    def _record_validation(self, st: SourceState, v: Validation) -> None:
        m, name = self.metrics, st.name
        st.last_validation = v
        m.validation_runs_total.labels(name, VALIDATION_OK if v.ok else _label(v.reason)).inc()
        m.validation_duration_seconds.labels(name).observe(v.duration)
        m.validation_success.labels(name).set(1 if v.ok else 0)
        m.validation_last_run_timestamp_seconds.labels(name).set(v.at)
        if v.ok:
            m.validation_last_success_timestamp_seconds.labels(name).set(v.at)
        log.log(
            logging.INFO if v.ok else logging.WARNING,
            "validation passed" if v.ok else "validation failed",
            extra={
                "source": name,
                "result": VALIDATION_OK if v.ok else _label(v.reason),
                "trigger": v.trigger,
                "duration": round(v.duration, 3),
                "offline": v.offline,
                "detail": v.message,  # yt-dlp's verdict lines, already redacted by the probe
            },
        )

    async def _after_validation(self, st: SourceState, v: Validation) -> None:
        if st.verifying and st.verifying.uploaded and v.conclusive:
            self._verified(st, "verified" if v.ok else "still_failing")
        # Missing and corrupt files have grace periods of their own (see _track_absence).
        if v.reason and v.reason.fixable and v.reason not in _GRACED:
            await self.trigger(st.name, v.reason, origin="validation", error=v.message)

    # --- refresh requests ----------------------------------------------------------------------

    async def request(
        self,
        source: str,
        reason_text: str,
        *,
        origin: Origin,
        error: str | None = None,
        video_id: str | None = None,
        force: bool = False,
    ) -> TriggerOutcome:
        """A refresh asked for by the backend or a person, in their words."""
        return await self.trigger(
            source,
            resolve_reason(reason_text, error),
            origin=origin,
            error=error,
            video_id=video_id,
            detail=reason_text,
            force=force,
        )

    async def trigger(
        self,
        source: str,
        reason: Reason,
        *,
        origin: Origin,
        error: str | None = None,
        video_id: str | None = None,
        detail: str | None = None,
        force: bool = False,
    ) -> TriggerOutcome:
        """Ask for fresh cookies; coalescing and cooldown are decided atomically in Redis."""
        st = self.state(source)
        if not reason.fixable:
            return TriggerOutcome(
                "ignored", source, reason, f"{reason.value} is not fixed by fresh cookies"
            )
        if not force and reason is not Reason.MANUAL and reason not in st.settings.trigger_on:
            return TriggerOutcome("ignored", source, reason, f"{reason.value} is not in trigger_on")
        if not self.redis_up:
            return self._defer(st, reason, force)
        data = self._job_data(st, reason, origin, error, video_id, detail)
        try:
            result = await self.queue.request_refresh(
                source, data, self.job_options, cooldown_s=st.settings.refresh_cooldown, force=force
            )
        except RedisError as exc:
            self._redis_down(exc)
            return self._defer(st, reason, force)
        return self._requested(st, reason, origin, result)

    def _requested(
        self, st: SourceState, reason: Reason, origin: str, r: RefreshResult
    ) -> TriggerOutcome:
        self.metrics.refresh_requests_total.labels(st.name, reason.value, r.state).inc()
        if r.state == "enqueued":
            assert r.job_id is not None
            self.metrics.refresh_jobs_enqueued_total.labels(st.name, reason.value).inc()
            st.requested[r.job_id] = self.clock()
        if r.state in ("enqueued", "coalesced"):
            st.pending_job = r.job_id
            self.metrics.refresh_pending.labels(st.name).set(1)
        messages = {
            "enqueued": "Cookie refresh job enqueued",
            "coalesced": "A refresh job is already pending for this source",
            "cooldown": "A refresh finished recently; cooling down",
        }
        log.info(
            "refresh %s",
            r.state,
            extra={"source": st.name, "reason": reason.value, "origin": origin, "job_id": r.job_id},
        )
        return TriggerOutcome(r.state, st.name, reason, messages[r.state], r.job_id, r.retry_after)

    def _defer(self, st: SourceState, reason: Reason, force: bool) -> TriggerOutcome:
        st.owed = strongest(st.owed, reason)
        st.owed_force = st.owed_force or force
        self.metrics.refresh_requests_total.labels(st.name, reason.value, "deferred").inc()
        log.warning(
            "redis unavailable; refresh owed", extra={"source": st.name, "reason": st.owed.value}
        )
        return TriggerOutcome(
            "deferred",
            st.name,
            reason,
            "Redis is unavailable; the refresh will be enqueued when it returns",
        )

    def _job_data(
        self,
        st: SourceState,
        reason: Reason,
        origin: str,
        error: str | None,
        video_id: str | None,
        detail: str | None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "reason": reason.value,
            "source": st.name,
            "cookies_file": str(st.settings.cookies_file),
            "requested_at": dt.datetime.now(dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "host": self.host,
            "origin": origin,
        }
        if video_id:
            data["video_id"] = video_id
        if error:
            data["error"] = redact(error, ERROR_LIMIT)
        if detail and detail != reason.value:
            data["detail"] = redact(detail, 200)
        return data

    # --- the queue -----------------------------------------------------------------------------

    async def poll_queue(self) -> None:
        """Queue counts, pending jobs and finished jobs; also how Redis outages end."""
        if not self.redis_up and self.clock() < self._redis_retry_at:
            return
        try:
            counts = await self.queue.counts()
            pending = {name: await self.queue.pending_job(name) for name in self.sources}
            finished = await self.queue.finished_since(self._finished_cursor or 0)
        except RedisError as exc:
            self._redis_down(exc)
            return
        recovered = not self.redis_up
        self._redis_is_up()
        self.counts = counts.as_dict()
        self.metrics.set_queue_counts(self.settings.queue, self.counts)
        for name, job_id in pending.items():
            self.sources[name].pending_job = job_id
            self.metrics.refresh_pending.labels(name).set(1 if job_id else 0)
        self._take_finished(finished)
        if recovered:
            await self._pay_owed()

    def _redis_is_up(self) -> None:
        if not self.redis_up:
            log.info("redis reachable", extra={"after_failures": self._redis_failures})
        self.redis_up = True
        self._redis_failures = 0
        self.metrics.redis_up.set(1)

    def _redis_down(self, exc: BaseException) -> None:
        if self.redis_up or self._redis_failures == 0:
            log.error("redis unreachable: %s", type(exc).__name__)
        self.redis_up = False
        self._redis_failures += 1
        self._redis_retry_at = self.clock() + self._backoff.compute(self._redis_failures)
        self.metrics.redis_up.set(0)

    async def _pay_owed(self) -> None:
        for st in self.sources.values():
            if st.owed is None:
                continue
            reason, force = st.owed, st.owed_force
            st.owed, st.owed_force = None, False
            outcome = await self.trigger(st.name, reason, origin="owed", force=force)
            if outcome.state == "deferred":
                return  # down again; it is owed once more

    def _take_finished(self, jobs: list[FinishedJob]) -> None:
        initial = self._finished_cursor is None
        for job in sorted(jobs, key=lambda j: j.finished_at):
            if job.job_id in self._finished_seen or job.source not in self.sources:
                continue
            self._finished_seen.add(job.job_id)
            self._finished(self.sources[job.source], job, counted=not initial)
        if jobs:
            self._finished_cursor = max(int(j.finished_at * 1000) for j in jobs)
            # Jobs at the cursor's millisecond are read again next time; remember only those.
            self._finished_seen = {
                j.job_id for j in jobs if int(j.finished_at * 1000) >= self._finished_cursor
            }
        elif initial:
            self._finished_cursor = 0

    def _finished(self, st: SourceState, job: FinishedJob, *, counted: bool) -> None:
        m, name = self.metrics, st.name
        st.history.append(job)
        ok = [j.outcome == "completed" for j in st.history]
        m.refresh_success_ratio.labels(name).set(sum(ok) / len(ok))
        gauge = (
            m.refresh_last_success_timestamp_seconds
            if job.outcome == "completed"
            else m.refresh_last_failure_timestamp_seconds
        )
        gauge.labels(name).set(max(j.finished_at for j in st.history if j.outcome == job.outcome))
        if not counted:
            return  # history recovered at start: counters are about what this process saw
        m.refresh_jobs_finished_total.labels(name, job.outcome).inc()
        log.info(
            "refresh job %s",
            job.outcome,
            extra={"source": name, "job_id": job.job_id, "attempts": job.attempts_made},
        )
        if job.outcome == "completed":
            self._start_verification(st, job)

    # --- did the refresh work? ----------------------------------------------------------------

    def _start_verification(self, st: SourceState, job: FinishedJob) -> None:
        since = st.requested.pop(job.job_id, job.created_at)
        deadline = job.finished_at + st.settings.upload_timeout
        st.verifying = _Verification(job.job_id, since, deadline)
        if st.last_change_at is not None and st.last_change_at >= since and _valid(st.report):
            # The extractor uploads before it reports success: the new file may be here already.
            st.verifying.uploaded = True
            self.spawn(self.validate(st.name, "verification"))
        self.timers.at(
            f"upload:{st.name}", deadline, _bind(self._upload_deadline, st.name, job.job_id)
        )

    async def _upload_deadline(self, source: str, job_id: str) -> None:
        st = self.state(source)
        if st.verifying and st.verifying.job_id == job_id and not st.verifying.uploaded:
            self._verified(st, "no_upload")

    def _verified(self, st: SourceState, result: str) -> None:
        assert st.verifying is not None
        log.log(
            logging.INFO if result == "verified" else logging.WARNING,
            "refresh verification: %s",
            result,
            extra={"source": st.name, "job_id": st.verifying.job_id},
        )
        self.metrics.refresh_verifications_total.labels(st.name, result).inc()
        self.timers.cancel(f"upload:{st.name}")
        st.verifying = None

    # --- views for the API and CLI -------------------------------------------------------------

    def status(self, source: str) -> dict[str, Any]:
        st = self.state(source)
        r = st.report or cookiefile.CookieReport(path=st.settings.cookies_file, exists=False)
        now = self.clock()
        return {
            "source": st.name,
            "configured": True,
            "path": str(st.settings.cookies_file),
            "exists": r.exists,
            "valid": r.valid,
            "error": r.error,
            "size_bytes": r.size if r.exists else None,
            "last_modified": r.mtime,
            "age_seconds": round(now - r.mtime, 3) if r.mtime is not None else None,
            "secure_permissions": r.secure_permissions,
            "cookies": r.cookies,
            "malformed_lines": r.malformed_lines,
            "login_cookies": list(r.login_cookies),
            "login_expires_at": r.login_expires_at,
            "logged_in": r.logged_in,
            "session_changed_at": st.session_changed_at,
            "rotation_due_at": st.rotation[0] if st.rotation else None,
            "refresh": {
                "pending_job": st.pending_job,
                "owed": st.owed.value if st.owed else None,
                "verifying_job": st.verifying.job_id if st.verifying else None,
                "success_ratio": _ratio(st.history),
            },
            "last_validation": st.last_validation.as_dict() if st.last_validation else None,
            "message": _file_message(r),
        }


_GRACED = frozenset({Reason.MISSING_COOKIES, Reason.CORRUPT_COOKIES})


def resolve_reason(reason_text: str, error: str | None) -> Reason:
    """The error text is the evidence; the caller's reason names it only when the error can't."""
    if error and (found := classify(error).reason) is not Reason.OTHER:
        return found
    try:
        return Reason(reason_text.strip().lower())
    except ValueError:
        found = classify(reason_text).reason
        return Reason.MANUAL if found is Reason.OTHER else found


def _signature(r: CookieReport | None) -> tuple[Any, ...] | None:
    if r is None:
        return None
    return (r.exists, r.size, r.mtime, r.mode, r.error, r.fingerprint, r.cookies)


def _valid(r: CookieReport | None) -> bool:
    return r is not None and r.valid


def _label(reason: Reason | None) -> str:
    return reason.value if reason else Reason.OTHER.value


def _ratio(history: deque[FinishedJob]) -> float | None:
    return sum(j.outcome == "completed" for j in history) / len(history) if history else None


def _file_message(r: CookieReport) -> str:
    if not r.exists:
        return "Cookies file not found"
    if r.error:
        return f"Cookies file unusable: {r.error}"
    if not r.logged_in:
        return "Cookies file found, but yt-dlp would not be logged in"
    return "Cookies file found"


def _mtime_of(st: SourceState) -> Callable[[], float | None]:
    return lambda: st.report.mtime if st.report is not None and st.report.exists else None


def _remove(gauge: Any, *labels: str) -> None:
    """Drop a sample: "no value" is no sample, not a zero that alerts would misread."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def _bind(func: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    async def job() -> Any:
        return await func(*args)

    return job
