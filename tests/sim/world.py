"""The simulated world: jar writers, YouTube, extractor workers, the backend, daemons, clocks.

Time is simulated (`World.t`, seconds of "true" time). Each daemon's host has two clocks, as the
runtime does (`core.Now(mono, wall)`): a wall clock (an offset from true time, stepped by
`clock_step`) for dates, and a monotonic clock (its own origin from boot, never stepped) for
intervals: the core's interval timers, the periodic jobs, the Redis retry wait, the save delay.
Redis's clock is true time; an extractor host's is true time + its skew. Every daemon is a
`SimDaemon`: the runtime of supervisor.py restated without I/O, feeding the same events to the
real `core.step` and carrying out the effects on the modelled Redis, timers and state file.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cookie_supervisor import core, memory, state
from cookie_supervisor.bull import FinishedJob
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.cookiefile import CookieReport, _report, _Scan
from tests.sim.redis_model import Job, RedisDownError, RedisModel

SOURCE = "main"
PATH = Path("/srv/backend/cookies.txt")
T0 = 1_800_000_000.0  # true time of a scenario's start (2027-01-15)
HEADER = "# Netscape HTTP Cookie File"
_LOGIN = (
    "APISID",
    "HSID",
    "LOGIN_INFO",
    "SAPISID",
    "SID",
    "SSID",
    "__Secure-1PSID",
    "__Secure-3PAPISID",
    "__Secure-3PSID",
    "__Secure-1PSIDTS",
)


# --- the jar ------------------------------------------------------------------------------------


def jar_text(session: int | None, expires: float, ts: int = 0) -> str:
    """A jar as the extractor writes it: other sites' cookies around YouTube's login cookies.
    `session` None: a logged-out jar (YouTube's visitor cookies only). `ts` varies the cookies
    YouTube re-issues on ordinary requests (*PSIDTS), which are not the session's identity."""
    exp = int(expires)
    lines = [HEADER, ""]
    lines += [f".example.org\tTRUE\t/\tFALSE\t{exp}\tpref{i}\tv{i}" for i in range(6)]
    lines.append(f".youtube.com\tTRUE\t/\tTRUE\t{exp}\tVISITOR_INFO1_LIVE\tvis{ts % 7}")
    if session is not None:
        for name in _LOGIN:
            value = f"s{session}{name}" if not name.endswith("TS") else f"ts{ts}"
            lines.append(f".youtube.com\tTRUE\t/\tTRUE\t{exp}\t{name}\t{value}")
    lines.append(f".youtube.com\tTRUE\t/\tTRUE\t{exp}\tYSC\tysc{ts}")
    lines += [f".example.net\tTRUE\t/\tFALSE\t{exp}\tid{i}\tw{i}" for i in range(6)]
    return "\n".join(lines) + "\n"


_SCANS: dict[str, _Scan] = {}
_REPORTS: dict[tuple[bool, str, float, bytes], CookieReport] = {}


def parse(text: str) -> _Scan:
    """cookiefile's own scanner over in-memory text (what `_parse` does with the descriptor)."""
    scan = _SCANS.get(text)
    if scan is None:
        scan = _Scan()
        for line in text.splitlines(keepends=True):
            scan.empty = False
            scan.line(line.removesuffix("\n"))
        if len(_SCANS) > 4096:
            _SCANS.clear()
        _SCANS[text] = scan
    return scan


@dataclass(slots=True)
class Jar:
    exists: bool = True
    text: str = ""
    mtime: float = 0.0  # wall time of the writing host
    session: int | None = None  # the session the complete content holds
    version: int = 0

    def report(self, now_wall: float, key: bytes) -> CookieReport:
        """What cookiefile.inspect returns for the jar as it is now (login cookies expire 400
        days after they are written, so a report stays true while the jar does not change)."""
        ident = (self.exists, self.text, self.mtime, key)
        cached = _REPORTS.get(ident)
        if cached is not None:
            return cached
        found = self._report(now_wall, key)
        if len(_REPORTS) > 4096:
            _REPORTS.clear()
        _REPORTS[ident] = found
        return found

    def _report(self, now_wall: float, key: bytes) -> CookieReport:
        if not self.exists:
            return CookieReport(path=PATH, exists=False, inspected_at=now_wall)
        base = CookieReport(
            path=PATH,
            exists=True,
            size=len(self.text.encode()),
            mtime=self.mtime,
            mode=0o600,
            file_type="file",
            inspected_at=now_wall,
        )
        scan = parse(self.text)
        if error := scan.verdict():
            return replace(base, error=error)
        return _report(base, scan, now_wall, key)


# --- YouTube ------------------------------------------------------------------------------------


@dataclass(slots=True)
class YouTube:
    sessions: dict[int, str] = field(default_factory=dict)  # honoured | rotated | logged_out
    ip_flagged: bool = False
    bot_wall_account: bool = False  # the bot wall also hits the account check
    po_token: bool = False
    restricted: bool = False
    rate_limited: bool = False
    js_failing: bool = False

    def honoured(self, session: int | None) -> bool:
        return session is not None and self.sessions.get(session) == "honoured"

    def verdict(self, session: int | None) -> str:
        """honoured | rotated | logged_out for a jar's session; anon for a jar without one."""
        return self.sessions.get(session, "logged_out") if session is not None else "anon"

    @property
    def blocked(self) -> Reason | None:
        """A cause fresh cookies cannot fix, as the diagnosis would name it."""
        if self.ip_flagged:
            return Reason.IP_FLAGGED
        if self.po_token:
            return Reason.PO_TOKEN_REQUIRED
        if self.restricted:
            return Reason.ACCOUNT_RESTRICTED
        return None

    @property
    def futile(self) -> bool:
        return self.blocked is not None or self.js_failing

    def media(self, session: int | None) -> Reason | None:
        wall = self.bare()  # what stops a download whatever the cookies
        if wall is not None:
            return wall
        verdict = self.verdict(session)
        if verdict == "rotated":
            return Reason.COOKIES_ROTATED
        if verdict in ("logged_out", "anon"):
            return Reason.BOT_DETECTION
        return Reason.FORBIDDEN if self.restricted else None

    def account(self, session: int | None) -> Reason | None:
        if self.rate_limited:
            return Reason.RATE_LIMITED
        if self.ip_flagged and self.bot_wall_account:
            return Reason.BOT_DETECTION
        verdict = self.verdict(session)
        if verdict == "rotated":
            return Reason.COOKIES_ROTATED
        if verdict in ("logged_out", "anon"):
            return Reason.LOGGED_OUT
        return None

    def bare(self) -> Reason | None:
        """The media probe without cookies (a guest): a flagged IP walls it as it walls every
        request from the address, whatever the session; a dead session does not (N18, N27)."""
        if self.rate_limited:
            return Reason.RATE_LIMITED
        if self.ip_flagged:
            return Reason.BOT_DETECTION
        if self.po_token:
            return Reason.PO_TOKEN_REQUIRED
        return Reason.JS_CHALLENGE_FAILED if self.js_failing else None

    def backend_text(self, session: int | None) -> str:
        """What the backend's yt-dlp prints for a download with the jar as it is."""
        reason = self.media(session)
        return _TEXTS.get(reason, "")


_TEXTS: dict[Reason | None, str] = {
    Reason.RATE_LIMITED: "ERROR: [youtube] abc: The current session has been rate-limited by "
    "YouTube for up to an hour. It is recommended to use `-t sleep` to add a delay",
    Reason.BOT_DETECTION: "ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use "
    "--cookies-from-browser or --cookies for the authentication.",
    Reason.PO_TOKEN_REQUIRED: "WARNING: [youtube] abc: Some web client https formats have been "
    "skipped as they require a GVS PO Token which was not provided",
    Reason.COOKIES_ROTATED: "WARNING: [youtube] The provided YouTube account cookies are no "
    "longer valid. They have likely been rotated in the browser as a security measure.",
    Reason.FORBIDDEN: "ERROR: unable to download video data: HTTP Error 403: Forbidden",
    Reason.JS_CHALLENGE_FAILED: "WARNING: [youtube] abc: n challenge solving failed: Some "
    "formats may be missing. ERROR: [youtube] abc: Requested format is not available",
}
AMBIGUOUS_TEXTS = (
    "ERROR: unable to download video data: HTTP Error 403: Forbidden",
    "ERROR: [youtube] xyz: Private video. Sign in if you've been granted access to this video",
    "ERROR: [youtube] xyz: This video is private",
    "ERROR: [youtube] xyz: Sign in to confirm your age. This video may be inappropriate for "
    "some users.",
    "ERROR: [youtube] xyz: This video is age-restricted",
    "ERROR: [youtube] xyz: Join this channel to get access to members-only content",
)


# --- daemons ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    validate_every: float = 1800.0
    account_check: bool = True
    offline_only: bool = False  # validation_urls = []
    refresh_cooldown: float = 600.0
    refresh_backoff: float = 1800.0
    refresh_backoff_max: float = 86400.0
    upload_timeout: float = 600.0
    rotate_after: float = 7 * 86400.0
    renew_before: float = 2 * 86400.0
    missing_grace: float = 60.0
    corrupt_grace: float = 30.0
    logged_out_confirm: float = 10.0
    poll: float = 2.0

    def settings(self) -> SourceSettings:
        return SourceSettings(
            name=SOURCE,
            cookies_file=PATH,
            validation_urls=[] if self.offline_only else ["https://www.youtube.com/watch?v=a"],
            validate_every=self.validate_every,
            validate_jitter=0.1,
            account_check_url=None if self.account_check else "",
            refresh_cooldown=self.refresh_cooldown,
            refresh_backoff=self.refresh_backoff,
            refresh_backoff_max=self.refresh_backoff_max,
            upload_timeout=self.upload_timeout,
            rotate_after=self.rotate_after,
            renew_before=self.renew_before,
            missing_grace=self.missing_grace,
            corrupt_grace=self.corrupt_grace,
            logged_out_confirm=self.logged_out_confirm,
        )


_HAS_NOW = hasattr(core, "Now")
_WALL_TIMERS: frozenset[str] = getattr(core, "WALL_TIMERS", frozenset(core.TimerKey.__args__))  # type: ignore[attr-defined]
RESCAN_EVERY = 60.0
# How long one poll's reads take (BullQueue.observe: about ten round trips, one after another):
# a job that ends meanwhile is read pending, then finished (N22).
POLL_READS = 0.01
DEBOUNCE = 0.25
SAVE_DELAY = 1.0


class SimDaemon:
    """supervisor.py without I/O: one daemon process (one incarnation of it)."""

    def __init__(self, world: World, idx: int, cfg: DaemonConfig, incarnation: int) -> None:
        self.world, self.idx, self.cfg, self.incarnation = world, idx, cfg, incarnation
        self.name = f"d{idx}"
        self.settings = cfg.settings()
        self.state = core.State.of([self.settings.policy()])
        raw = world.stores.get(idx)
        stored = json.loads(raw) if raw else {}
        # the real daemon draws a random key on its first run; the world draws it from the seed
        self.key = state.fingerprint_key(stored) if "key" in stored else world.rng.randbytes(32)
        memory.restore(self.state, stored)
        self.alive = True
        self.born = world.t  # true time this incarnation started
        self.redis_failures = 0
        self.redis_retry_at = 0.0
        self.timers: dict[str, int] = {}  # key -> token of the live heap entry
        self.timer_at: dict[str, float] = {}  # key -> when (its clock: wall or mono)
        self.save_armed = False
        self.changes = 0  # events that did something (a quiet poll or rescan does not count)
        self.quiet: dict[str, tuple[int, int, bool, float, float, int]] = {}
        self.dormant: dict[str, Callable[[], None]] = {}
        self.intervals: dict[str, Callable[[], None]] = {}
        self.inspect_token = 0
        self.verifying_before: tuple[str, float] | None = None
        self.mono0 = world.rng.uniform(1000, 100000)  # monotonic clock's origin (boot)

    # --- clocks ---------------------------------------------------------------------------

    def wall(self) -> float:
        """The host's wall clock: true time + its offset, which `World.clock_step` moves."""
        return self.world.t + self.world.offsets.get(self.idx, 0.0)

    def mono(self) -> float:
        """The host's monotonic clock: true time from an origin drawn at boot (a restart starts
        it again), never stepped."""
        return self.world.t + self.mono0

    def now(self) -> Any:
        if _HAS_NOW:
            return core.Now(mono=self.mono(), wall=self.wall())  # type: ignore[attr-defined]
        return self.wall()

    def true_time(self, key: str, at: float) -> float:
        """When (true time) a timer at `at` on its clock fires."""
        if key.split(":")[0] in _WALL_TIMERS or not _HAS_NOW:
            return at - self.world.offsets.get(self.idx, 0.0)
        return at - self.mono0

    # --- events in, effects out -----------------------------------------------------------

    def handle(self, event: core.Event, *, quiet_job: str | None = None) -> core.Answer | None:
        if not self.alive:
            return None
        ver = self.state.sources[SOURCE].verifying
        # the job the open verification is about (its id repeats after a flush): the checker
        # books a verdict on that job, not on a newer one with the same id
        self.verifying_before = (ver.job_id, ver.created_at) if ver is not None else None
        fx = core.step(self.state, event, self.now())
        self.world.record(self, event, fx)
        if fx or quiet_job is None:
            self.changes += 1
        answer = None
        for f in fx:
            answer = self.carry_out(f) or answer
            if not self.alive:
                break
        return answer

    def carry_out(self, fx: core.Effect) -> core.Answer | None:
        w = self.world
        match fx:
            case core.Answer():
                return fx
            case core.Enqueue():
                return self.enqueue(fx)
            case core.RunValidation():
                w.later(0.001, self, lambda: self.validation(fx))
            case core.Inspect():
                w.later(0.001, self, lambda: self.inspect(fx.source))
            case core.Arm():
                self.arm(f"{fx.key}:{fx.source}", fx.at, self.fire(fx.source, fx.key))
            case core.Cancel():
                self.cancel(f"{fx.key}:{fx.source}")
            case core.RecordOutcome():
                cfg = self.settings
                try:
                    failures, until = w.redis.record_outcome(
                        fx.source,
                        fx.job_id or "",
                        fx.ok,
                        int(cfg.refresh_backoff * 1000),
                        int(cfg.refresh_backoff_max * 1000),
                    )
                except RedisDownError:
                    self.redis_down()
                    return None
                w.on_outcome(self, fx, failures)
                until_s = until / 1000 if until else None
                self.handle(core.BackoffObserved(fx.source, failures, until_s))
            case core.ResetBackoff():
                try:
                    before = w.redis.backoff_state(fx.source)[0]
                    w.redis.reset_backoff(fx.source)
                except RedisDownError:
                    self.redis_down()
                    return None
                w.on_reset(self, before)
            case core.ShareDiagnosis():
                try:
                    w.redis.share_diagnosis(fx.source, fx.diagnosis, fx.ttl)
                except RedisDownError:
                    self.redis_down()
                    return None
            case core.Persist():
                if not self.save_armed:
                    self.save_armed = True
                    w.later(SAVE_DELAY, self, self.save)
            case _:
                if not isinstance(fx, core.Count | core.Observe | core.Log | core.Notify):
                    extra = getattr(w, "extra_effect", None)
                    if extra is not None:
                        extra(self, fx)
        return None

    def fire(self, source: str, key: str) -> Callable[[], None]:
        return lambda: self.handle(core.TimerFired(source, key))  # type: ignore[arg-type]

    # --- timers: one-shot at a date (wall) or after an interval (mono); periodic jobs on mono --

    def arm(self, key: str, at: float, job: Callable[[], None]) -> None:
        at = at if math.isfinite(at) else 1e18
        self.timer_at[key] = at

        def once() -> None:
            self.timers.pop(key, None)
            self.timer_at.pop(key, None)
            job()

        self.timers[key] = self.world.at(
            max(self.true_time(key, at), self.world.t), self, once, key=key
        )

    def cancel(self, key: str) -> None:
        self.timers.pop(key, None)
        self.timer_at.pop(key, None)

    def every(
        self,
        key: str,
        seconds: float,
        job: Callable[[], Any],
        jitter: float = 0.0,
        *,
        elide: bool = False,
    ) -> None:
        """schedule.Timers.every: on a grid of the monotonic clock from now, first after one
        interval (a wall clock step moves nothing). With `elide`, a run that the quiet rule says
        would do nothing is skipped (see `quiet_rule`)."""
        start = self.mono()

        def plan() -> None:
            n = max(1, math.floor((self.mono() - start) / seconds) + 1)
            due = start + n * seconds + (self.world.rng.uniform(0, jitter) if jitter else 0)
            true = due - self.mono0
            self.timers[key] = self.world.at(true, self, run, key=key)

        def run() -> None:
            if elide and self.is_quiet(key):
                self.dormant[key] = plan  # woken by a change, or a threshold, on the grid
                self.timers.pop(key, None)
                if (t := self.future_threshold()) is not None:
                    self.world.at(t, self, self.wake_all)
                return
            before = self.changes
            job()
            if elide and self.changes == before:
                self.quiet[key] = self.snapshot_versions()
            else:
                self.quiet.pop(key, None)
            plan()

        self.intervals[key] = plan
        plan()

    def snapshot_versions(self) -> tuple[int, int, bool, float, float, int]:
        w = self.world
        return (w.redis.version, w.jar.version, w.redis.up, self.mono(), self.wall(), self.changes)

    def is_quiet(self, key: str) -> bool:
        """The quiet rule: a poll or rescan is skipped when the last one produced no effect, no
        event reached the daemon since, Redis and the jar are as they were, and no time the core
        compares `now` with (grace end, retry, backoff, upload deadline, rotation due) passed in
        between: the core's answer would again be nothing. Keeps 30-day worlds fast."""
        last = self.quiet.get(key)
        if last is None or last[5] != self.changes:
            return False
        w = self.world
        if key == "queue-poll" and w.job_end_due(POLL_READS):
            return False  # a job may end between its reads: this poll is not the last one again
        if (w.redis.version, w.jar.version, w.redis.up) != last[:3]:
            return False
        shared = w.redis.extra.get("diagnosis:" + SOURCE)
        if shared is not None and shared[1] / 1000 <= w.t:
            w.redis.extra.pop("diagnosis:" + SOURCE)  # expired: Redis forgot it
            w.redis.version += 1
            return False
        return self.next_threshold(last[3], last[4]) is None

    def core_times(self) -> Iterator[float]:
        """Every time the core compares `now` with: grace end, retry, backoff, upload deadline,
        rotation due, the holder's re-check of a shared diagnosis."""
        for src in self.state.sources.values():
            rot = src.rotation()
            for t in (
                src.problem_confirm_at,
                src.retry_at,
                src.backoff_until,
                src.verifying.deadline if src.verifying else None,
                rot[0] if rot else None,
                src.share_due if src.diagnosed is not None else None,  # N32: mono
            ):
                if t is not None:
                    yield t
        if self.state.emptied_at is not None:  # a shared diagnosis held past a flush (N3)
            yield self.state.emptied_at + core.SHARED_HOLD

    def next_threshold(self, mono: float, wall: float) -> float | None:
        """The earliest true time after the given clocks at which a core threshold is crossed,
        if it was crossed by now (else None)."""
        for t in self.core_times():
            if mono < t <= self.mono() or wall < t <= self.wall():
                return t
        if self.state.redis_up is False and mono < self.redis_retry_at <= self.mono():
            return self.redis_retry_at
        return None

    def future_threshold(self) -> float | None:
        """The earliest true time ahead at which a core threshold may be crossed (either clock)."""
        found: list[float] = []
        off = self.world.offsets.get(self.idx, 0.0)
        for t in self.core_times():
            found += [x for x in (t - off, t - self.mono0) if x > self.world.t]
        if self.state.redis_up is False and self.redis_retry_at - self.mono0 > self.world.t:
            found.append(self.redis_retry_at - self.mono0)  # the runtime's wait is monotonic
        shared = self.world.redis.extra.get("diagnosis:" + SOURCE)
        if shared is not None and shared[1] / 1000 > self.world.t:
            found.append(shared[1] / 1000)  # a shared diagnosis expires: polls see it go
        return min(found) + 0.001 if found else None

    def wake(self) -> None:
        """After any event: dormant periodic jobs run again if anything changed (a threshold
        crossed wakes them by its own event, `wake_all`)."""
        if not self.dormant:
            return
        w = self.world
        versions = (w.redis.version, w.jar.version, w.redis.up)
        for key, plan in list(self.dormant.items()):
            last = self.quiet.get(key)
            if last is None or last[5] != self.changes or last[:3] != versions:
                del self.dormant[key]
                plan()

    def wake_all(self) -> None:
        for plan in self.dormant.values():
            plan()
        self.dormant.clear()

    def clock_stepped(self, delta: float) -> None:
        """The host's wall clock jumped: date timers (`core.WALL_TIMERS`: a rotation's due date)
        now fire at other true times. Everything on the monotonic clock stays where it was: the
        core's interval timers (grace, retry, upload deadline), the periodic jobs (queue poll,
        rescan, scheduled validations: `schedule.Timers.every` runs them on the event loop's
        clock), the Redis retry wait, the save delay and the watcher's debounce."""
        for key, at in list(self.timer_at.items()):
            if key.split(":")[0] in _WALL_TIMERS or not _HAS_NOW:
                self.arm(key, at, self.timer_job(key))

    def timer_job(self, key: str) -> Callable[[], None]:
        kind, source = key.split(":", 1)
        return self.fire(source, kind)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.poll()
        self.inspect(SOURCE)
        self.every("queue-poll", self.cfg.poll, self.poll, elide=True)
        self.every("rescan", RESCAN_EVERY, lambda: self.inspect(SOURCE), elide=True)
        every = self.settings.validate_every
        if every > 0:
            self.every(f"validate:{SOURCE}", every, self.fire(SOURCE, "validate"), every * 0.1)
        self.handle(core.TimerFired(SOURCE, "validate"))

    def stop(self) -> None:
        """SIGTERM: the state file is written at once."""
        self.save()
        self.alive = False

    def kill(self) -> None:
        self.alive = False

    def save(self) -> None:
        self.save_armed = False
        if self.alive:
            self.world.stores[self.idx] = json.dumps(memory.snapshot(self.state, self.key))
            self.world.on_save(self)

    # --- the file ---------------------------------------------------------------------------

    def watch(self) -> None:
        """The watcher saw a change: one inspection per burst (debounced)."""
        self.inspect_token += 1
        token = self.inspect_token

        def go() -> None:
            if token == self.inspect_token:
                self.inspect(SOURCE)

        self.world.later(DEBOUNCE, self, go)

    def inspect(self, source: str) -> None:
        report = self.world.jar.report(self.wall(), self.key)
        self.world.inspections += 1
        self.handle(core.FileInspected(source, report), quiet_job="inspect")

    # --- validation -------------------------------------------------------------------------

    def validation(self, fx: core.RunValidation) -> None:
        """supervisor.run_validation: the offline check, then the runs `core.next_probe` asks
        for, answered by the world's YouTube as the jar was when the validation began."""
        w = self.world
        started, began = self.wall(), self.mono()
        report = w.jar.report(self.wall(), self.key)
        self.handle(core.FileInspected(fx.source, report))
        if not self.alive:
            return
        src = self.state.sources[fx.source]
        session = w.jar.session if report.logged_in else None
        offline = core.offline_validation(report, self.settings, started, self.wall(), fx.trigger)
        if offline is not None:
            w.on_validation(self, offline, session, w.t)
            w.later(0.002, self, lambda: self.handle(core.ValidationFinished(fx.source, offline)))
            return
        yt, rng = w.youtube, w.rng
        plan = core.plan_validation(src, fx.diagnose)
        said: tuple[core.ProbeSaid, ...] = ()
        duration = 0.0
        while (probe := core.next_probe(plan, said)) is not None:
            if probe.kind == "media":
                reason = yt.media(session)
            elif probe.kind == "account":
                reason = yt.account(session)
            else:
                reason = yt.bare()
            duration += rng.uniform(1, 5)
            said += (core.ProbeSaid(probe.kind, probe.url, reason),)
        w.validations += 1
        started_t = w.t

        def done() -> None:
            v = core.validation_of(said, started, self.wall(), fx.trigger)
            # supervisor.run_validation: the duration is an interval, measured on mono
            v = replace(v, took=max(0.0, self.mono() - began))
            w.on_validation(self, v, session, started_t)
            self.handle(core.ValidationFinished(fx.source, v))

        w.later(duration, self, done)

    # --- refresh requests -------------------------------------------------------------------

    def request(
        self, reason_text: str, *, origin: core.Origin, error: str | None, force: bool
    ) -> core.Answer | None:
        reason = core.resolve_reason(reason_text, error)
        detail = reason_text if reason_text != reason.value else None
        ask = core.RefreshAsked(SOURCE, reason, origin, force, error, None, detail)
        return self.handle(ask)

    def enqueue(self, fx: core.Enqueue) -> core.Answer | None:
        w = self.world
        data = {
            "reason": fx.reason.value,
            "origin": fx.origin,
            "force": fx.force,
            "daemon": self.idx,
        }
        try:
            job_id, st, left = w.redis.request_refresh(
                fx.source,
                data,
                timestamp=int(self.wall() * 1000),
                cooldown_ms=int(self.settings.refresh_cooldown * 1000),
                force=fx.force,
                default_source=True,
            )
        except RedisDownError:
            self.redis_down()
            answered = core.RefreshAnswered(fx.source, fx.reason, fx.origin, "deferred")
        else:
            retry = left / 1000 if st in ("cooldown", "backoff") else None
            answered = core.RefreshAnswered(
                fx.source,
                fx.reason,
                fx.origin,
                st,
                job_id,
                retry,
                fx.force,  # type: ignore[arg-type]
            )
            w.on_enqueue(self, fx, st, job_id)
        return self.handle(answered)

    # --- the queue ----------------------------------------------------------------------------

    def redis_down(self) -> None:
        self.redis_failures += 1
        cap = min(30.0, 0.5 * 2**self.redis_failures)
        self.redis_retry_at = self.mono() + self.world.rng.uniform(0, cap)
        self.handle(core.RedisDown("connection refused (ECONNREFUSED)"))

    def poll(self) -> None:
        """BullQueue.observe: one read after another, not one atomic look. The pending jobs
        are read before the finished ones; a worker ending a job within `POLL_READS` of the
        poll's start ends it between those reads (the poll then names it both pending and
        finished, as the real one does); otherwise nothing can change Redis in between and the
        poll is taken at once."""
        if self.state.redis_up is False and self.mono() < self.redis_retry_at:
            return
        r, read_at = self.world.redis, self.mono()
        try:
            epoch = r.epoch(f"{self.name}#{self.incarnation}:{self.world.redis.flushes}")
            counts = r.counts()
            pending = {SOURCE: r.pending_job(SOURCE, default_source=True)}
        except RedisDownError:
            self.redis_down()
            return
        was = self.state.sources[SOURCE].pending_job  # what the runtime passes to observe
        if self.world.job_end_due(POLL_READS):
            self.world.later(
                POLL_READS, self, lambda: self.poll_rest(epoch, counts, pending, was, read_at)
            )
        else:
            self.poll_rest(epoch, counts, pending, was, read_at)

    def poll_rest(
        self,
        epoch: str,
        counts: dict[str, int],
        pending: dict[str, str | None],
        was: str | None,
        read_at: float,
    ) -> None:
        r = self.world.redis
        try:
            finished, window = r.recent_finished(self.state.judged or ())
            vanished = set()
            if (
                was is not None
                and pending[SOURCE] is None
                and r.job_state(was, SOURCE) == "missing"
            ):
                vanished.add(was)
            if not self.state.history_recovered:
                failures, until = r.backoff_state(SOURCE)
                self.handle(core.BackoffObserved(SOURCE, failures, until / 1000 if until else None))
            diagnoses = {SOURCE: r.shared_diagnosis(SOURCE)}
            progress = {}
            if (job_id := pending[SOURCE]) is not None:
                found = r.pending_progress(job_id)
                if found is not None:
                    progress[SOURCE] = core.PendingJob(*found)
        except RedisDownError:
            self.redis_down()
            return
        self.redis_failures = 0
        observed = core.QueueObserved(
            pending,
            tuple(_view(j) for j in finished),
            frozenset(vanished),
            counts,
            diagnoses,
            progress=progress,
            window=window,
            epoch=epoch,
            read_at=read_at,
        )
        self.handle(observed, quiet_job="poll")


def _view(j: Job) -> FinishedJob:
    data = j.data
    outcome = "completed" if j.returnvalue is not None else "failed"
    return FinishedJob(
        job_id=j.job_id,
        source=data.get("source") if isinstance(data.get("source"), str) else None,
        reason=data.get("reason"),
        outcome=outcome,  # type: ignore[arg-type]
        finished_at=(j.finished_on or 0) / 1000,
        attempts_made=j.attempts_made,
        failed_reason=j.failed_reason,
        created_at=j.timestamp / 1000,
    )


# --- extractor workers --------------------------------------------------------------------------

WORKER_MODES = ("new_ok", "same", "no_upload", "new_bad", "fail", "slow")


@dataclass(slots=True)
class Worker:
    skew: float = 0.0  # the host's clock minus true time
    busy: bool = False
    alive: bool = True


# --- the world ----------------------------------------------------------------------------------


_Entry = tuple[float, int, Callable[[], Any], Any, "str | None"]  # t, seq, fn, owner, timer key


class World:
    """The whole simulated world of one scenario."""

    def __init__(self, seed: int, *, writer: str = "atomic", stall_max: float = 5.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.t = T0
        self.heap: list[_Entry] = []
        self.seq = itertools.count()
        self.redis = RedisModel(clock=lambda: self.t)
        self.jar = Jar()
        self.youtube = YouTube()
        self.offsets: dict[int, float] = {}
        self.stores: dict[int, str] = {}
        self.daemons: dict[int, SimDaemon] = {}
        self.configs: dict[int, DaemonConfig] = {}
        self.workers: list[Worker] = [Worker()]
        self.worker_mode = "new_ok"
        self.writer = writer
        self.stall_max = stall_max
        self.sessions = itertools.count(1)
        self.session_at: dict[int, float] = {}  # session -> true time it was complete in the jar
        self.writing = False  # an upload of a healthy jar is in progress
        self.trace: list[str] = []
        self.tracing = False
        self.observers: list[Any] = []
        self.inspections = 0
        self.validations = 0
        self.logins = 0
        self.steps = 0
        self.incarnations = itertools.count(1)
        self.turn = 0
        self.wakeups: set[float] = set()
        self.job_ends: list[float] = []  # when a worker's scheduled step may end a job (a heap)

    # --- scheduling -------------------------------------------------------------------------

    def at(self, t: float, owner: Any, fn: Callable[[], Any], key: str | None = None) -> int:
        seq = next(self.seq)
        heapq.heappush(self.heap, (max(t, self.t), seq, fn, owner, key))
        return seq

    def later(self, delay: float, owner: Any, fn: Callable[[], Any]) -> int:
        return self.at(self.t + delay, owner, fn)

    def worker_step(self, delay: float, fn: Callable[[], Any]) -> None:
        """A worker's step that may end a job: a poll under way then may read it both pending
        and finished (`SimDaemon.poll`)."""
        heapq.heappush(self.job_ends, self.t + delay)
        self.later(delay, None, fn)
        # A dormant poll (the quiet rule) is due again if its next run would straddle the step.
        self.at(self.t + delay - POLL_READS, None, self.wake_polls)

    def wake_polls(self) -> None:
        for d in self.daemons.values():
            if d.alive and (plan := d.dormant.pop("queue-poll", None)) is not None:
                plan()

    def job_end_due(self, within: float) -> bool:
        """Does a worker's step fall within `within` seconds from now?"""
        ends = self.job_ends
        while ends and ends[0] < self.t:
            heapq.heappop(ends)
        return bool(ends) and ends[0] <= self.t + within

    def run(self, until: float, check: Callable[[], None] | None = None) -> None:
        """Run events up to true time `until`; `check` after every one."""
        heap = self.heap
        while heap and heap[0][0] <= until:
            t, seq, fn, owner, key = heapq.heappop(heap)
            if owner is not None:
                if not owner.alive:
                    continue
                if key is not None and owner.timers.get(key) != seq:
                    continue  # re-armed or cancelled since
            self.t = t
            fn()
            self.after_event()
            if check is not None:
                check()
        self.t = max(self.t, until)

    def after_event(self) -> None:
        for d in self.daemons.values():
            if d.alive:
                d.wake()
        if self.redis.up and (self.redis.wait or self.redis.delayed):
            n = len(self.workers)
            for i in range(n):  # hosts take turns: two hosts, two clocks
                w = self.workers[(self.turn + i) % n]
                if w.alive and not w.busy:
                    self.turn = (self.turn + i + 1) % n
                    self.start_job(w)
                    break
            if self.redis.delayed and not self.redis.wait:
                due = min(self.redis.delayed.values()) / 1000
                if due > self.t and due not in self.wakeups:
                    self.wakeups.add(due)
                    self.at(due, None, lambda: None)

    # --- observers ----------------------------------------------------------------------------

    def record(self, d: SimDaemon, event: core.Event, fx: list[core.Effect]) -> None:
        self.steps += 1
        for o in self.observers:
            o.step(d, event, fx)

    def on_enqueue(self, d: SimDaemon, fx: core.Enqueue, st: str, job_id: str | None) -> None:
        for o in self.observers:
            o.enqueue(d, fx, st, job_id)

    def on_outcome(self, d: SimDaemon, fx: core.RecordOutcome, failures: int) -> None:
        for o in self.observers:
            o.outcome(d, fx, failures)

    def on_reset(self, d: SimDaemon, before: int) -> None:
        for o in self.observers:
            o.reset(d, before)

    def on_validation(
        self, d: SimDaemon, v: core.Validation, session: int | None, t: float
    ) -> None:
        for o in self.observers:
            o.validation(d, v, session, t)

    def on_save(self, d: SimDaemon) -> None:
        for o in self.observers:
            o.saved(d)

    def note(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.t - T0:10.3f} {text}")

    # --- daemons ----------------------------------------------------------------------------

    def boot(self, idx: int) -> SimDaemon:
        d = SimDaemon(self, idx, self.configs[idx], next(self.incarnations))
        self.daemons[idx] = d
        d.start()
        return d

    def restart(self, idx: int, down: float, *, kill: bool) -> None:
        d = self.daemons.get(idx)
        if d is None or not d.alive:
            return
        d.kill() if kill else d.stop()
        self.later(down, None, lambda: self.boot(idx))

    def clock_step(self, idx: int, delta: float) -> None:
        self.offsets[idx] = self.offsets.get(idx, 0.0) + delta
        d = self.daemons.get(idx)
        if d is not None and d.alive:
            d.clock_stepped(delta)

    # --- the jar ------------------------------------------------------------------------------

    def changed(self) -> None:
        self.jar.version += 1
        for d in self.daemons.values():
            if d.alive:
                d.watch()

    def write(self, text: str, session: int | None, *, how: str, done: Callable[[], None]) -> None:
        """Write the jar: `atomic` (temp file + rename) or `scp` (truncate, then chunks)."""
        mtime = self.t + self.offsets.get(0, 0.0)
        if how == "atomic":
            self.jar.exists, self.jar.text, self.jar.mtime = True, text, mtime
            self.jar.session = session
            self.changed()
            done()
            return
        self.writing = True
        self.jar.exists, self.jar.text, self.jar.mtime = True, "", mtime
        self.jar.session = None
        self.changed()
        data, chunk = text, 512
        offsets = [*range(chunk, len(data), chunk), len(data)]
        t = 0.0
        for end in offsets:
            t += self.rng.uniform(0.01, self.stall_max) if self.rng.random() < 0.5 else 0.02

            def part(end: int = end) -> None:
                self.jar.text = data[:end]
                self.jar.mtime = self.t + self.offsets.get(0, 0.0)
                # the session is in the file as soon as its login cookies are
                whole = parse(self.jar.text).login.keys() >= {"LOGIN_INFO", "SAPISID", "SID"}
                self.jar.session = session if whole else None
                if whole and session is not None:
                    self.session_at.setdefault(session, self.t)
                if end == len(data):
                    self.writing = False
                self.changed()
                if end == len(data):
                    done()

            self.later(t, None, part)

    def new_session(self, verdict: str = "honoured") -> int:
        s = next(self.sessions)
        self.youtube.sessions[s] = verdict
        return s

    def install(self, session: int | None, how: str = "atomic") -> None:
        text = jar_text(session, self.t + 400 * 86400, ts=self.rng.randrange(10**6))

        def done() -> None:
            if session is not None:
                self.session_at.setdefault(session, self.t)

        self.write(text, session, how=how, done=done)

    def rewrite_same(self) -> None:
        """The backend's yt-dlp saves the jar after a download: same session, new *PSIDTS."""
        if not self.jar.exists or self.writing or self.jar.session is None:
            return
        text = jar_text(self.jar.session, self.t + 400 * 86400, ts=self.rng.randrange(10**6))
        self.jar.text, self.jar.mtime = text, self.t + self.offsets.get(0, 0.0)
        self.changed()

    def remove(self) -> None:
        if self.jar.exists and not self.writing:
            self.jar.exists, self.jar.session = False, None
            self.changed()

    # --- workers ----------------------------------------------------------------------------

    def start_job(self, w: Worker) -> None:
        job = self.redis.take(math.floor((self.t + w.skew) * 1000))
        if job is None:
            return
        w.busy = True
        mode = self.worker_mode
        self.logins += 1
        duration = self.rng.uniform(20, 90) if mode != "slow" else self.rng.uniform(300, 900)
        self.note(f"worker takes job {job.job_id} (uid {job.uid}) mode={mode}")

        def finish(ok: bool) -> None:
            w.busy = False
            self.redis.finish(job, ok, math.floor((self.t + w.skew) * 1000), "login failed")
            for o in self.observers:
                o.worker_finished(job, ok, mode)

        def work() -> None:
            for o in self.observers:
                o.worker_uploads(job, mode not in ("fail", "no_upload"))
            if mode == "fail":
                finish(False)
                return
            if mode == "no_upload":
                finish(True)
                return
            if mode == "same":
                session = self.jar.session
            else:
                session = self.new_session("rotated" if mode == "new_bad" else "honoured")
            self.install(session, self.writer)
            if self.writing:
                self.at_upload_end(lambda: finish(True))
            else:
                finish(True)

        self.worker_step(duration, work)

    def at_upload_end(self, fn: Callable[[], None]) -> None:
        def poll() -> None:
            if self.writing:
                self.worker_step(0.5, poll)
            else:
                fn()

        self.worker_step(0.5, poll)


__all__ = ["AMBIGUOUS_TEXTS", "DaemonConfig", "SimDaemon", "World", "jar_text"]
