"""The plain data every layer shares: what a cookie file said, what a validation found, a job
Bull finished, a refresh owed, the trigger/verdict/origin words, the two clocks, the names of the
core's counters and webhook events, and the `Policy` the core applies to one source.

It sits at the bottom of the house (with `classify`): the core, the runtime and the edges (Bull,
the state file, the metrics, the API, webhooks) all speak it, and it imports nothing of theirs.
Nothing here does I/O or decides anything; the rules are in `core/` and `verdict.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from cookie_supervisor.classify import Reason

# --- vocabulary ---------------------------------------------------------------------------------

TriggerState = Literal[
    "enqueued", "coalesced", "cooldown", "backoff", "deferred", "validating", "ignored"
]
Origin = Literal["api", "cli", "report", "validation", "file", "rotation", "owed", "retry"]
Verdict = Literal["verified", "still_failing", "no_upload", "superseded", "unverified"]
VERDICTS: tuple[Verdict, ...] = (
    "verified",
    "still_failing",
    "no_upload",
    "superseded",
    "unverified",  # uploaded, but no validation could judge it by the deadline (D3, N2)
)
TimerKey = Literal["grace", "rotation", "retry", "upload", "validate"]
# Timers whose `Arm.at` is a date on the wall clock; every other timer is on the monotonic clock.
WALL_TIMERS: frozenset[str] = frozenset({"rotation"})

# What the core counts and observes (`Count.metric`, `Observe.metric`): attributes of
# `metrics.Metrics` of the same name (tests/test_model.py holds the two together).
CounterName = Literal[
    "file_changes_total",
    "file_read_errors_total",
    "refresh_requests_total",
    "refresh_jobs_enqueued_total",
    "refresh_jobs_finished_total",
    "refresh_verifications_total",
    "pending_jobs_lost_total",
    "failure_reports_total",
    "validation_runs_total",
    "validation_diagnoses_total",
]
HistogramName = Literal["validation_duration_seconds", "login_session_lifetime_seconds"]
# What the core notifies (`Notify.event`): the webhook events of config.WEBHOOK_EVENTS.
NotifyEvent = Literal[
    "refresh_enqueued",
    "refresh_completed",
    "refresh_failed",
    "refresh_verified",
    "refresh_still_failing",
    "refresh_no_upload",
    "validation_failed",
    "validation_recovered",
    "cookies_expiring",
    "file_missing",
    "logged_out",
    "cookies_expired",
]

SESSIONS_KEPT = 32  # login sessions remembered per source (fingerprint → first seen)
LIFETIMES_KEPT = 32  # lifetimes of sessions seen to die, per source (fingerprint → seconds)
NOT_INSPECTED = "not_inspected"  # why a source is not usable before its file was looked at


# --- time ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Now:
    """The two clocks, read once per event by the runtime. Intervals (grace periods, confirm
    windows, retry waits, verification deadlines, how long a problem lasted) are measured on
    `mono`, which a stepped wall clock cannot stretch; dates (session first seen, rotation due,
    login expiry, owed since, validation times) are `wall`. Nothing on `mono` is persisted: it
    starts again at every boot."""

    mono: float
    wall: float


def as_now(now: Now | float) -> Now:
    return now if isinstance(now, Now) else Now(float(now), float(now))


# --- the policy of one source -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """What the core applies to one source: its settings as plain data. Built from the validated
    settings by `config.SourceSettings.policy()`, so the core never sees pydantic; the account
    check URL is already resolved (None: no account check)."""

    name: str
    cookies_file: Path
    validation_urls: tuple[str, ...]
    account_check_url: str | None
    trigger_on: frozenset[Reason]
    validate_every: float
    missing_grace: float
    corrupt_grace: float
    logged_out_confirm: float
    rotate_after: float
    renew_before: float
    upload_timeout: float


# --- the cookie file ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CookieReport:
    """One inspection of a cookie file. `error` says why it is unusable, if it is.

    `os_error` (an errno name) means the read failed for a reason that is not the file's: such a
    report is not `conclusive` and its `problem()` is None, whatever the other fields say.
    """

    path: Path
    exists: bool
    error: str | None = None
    size: int | None = None
    mtime: float | None = None
    mode: int | None = None
    cookies: int = 0
    malformed_lines: int = 0
    login_cookies: tuple[str, ...] = ()
    login_expires_at: float | None = None
    logged_in: bool = False
    login_expired: bool = False
    fingerprint: str | None = field(default=None, repr=False)
    inspected_at: float = field(default_factory=time.time)
    os_error: str | None = None
    file_type: str | None = None  # "file", "directory", "fifo", ... None when unknown
    denied: bool = False  # EACCES/EPERM: the daemon may not read it
    # yt-dlp's login pair (LOGIN_INFO and a SAPISID) is present with values, and holds until then
    # (None: session cookies, no expiry). `logged_in` is that rule judged at inspection; the core
    # judges it again on its own clock (`logged_in_at`), never this module's.
    login_pair: bool = False
    login_until: float | None = None

    @property
    def valid(self) -> bool:
        return self.exists and self.error is None

    @property
    def conclusive(self) -> bool:
        """False when an OS error hid the file: the report says nothing about the cookies."""
        return self.os_error is None

    @property
    def secure_permissions(self) -> bool | None:
        return None if self.mode is None else not self.mode & 0o077

    def logged_in_at(self, now: float) -> bool:
        """yt-dlp's "logged in" rule at `now`: the login pair present and not yet expired. (A
        report without the pair fields, made by hand, keeps its own verdict.)"""
        if not self.login_pair:
            return self.logged_in
        return self.login_until is None or now < self.login_until

    def problem_at(self, now: float) -> Reason | None:
        """`problem()` with the login judged at `now` (the core's clock)."""
        found = self.problem()
        if found in (None, Reason.LOGGED_OUT, Reason.EXPIRED) and self.login_pair:
            return None if self.logged_in_at(now) else Reason.EXPIRED
        return found

    def problem(self) -> Reason | None:
        """What is wrong with the jar before any network check (yt-dlp itself stays silent)."""
        if self.os_error is not None:
            return None
        if not self.exists:
            return Reason.MISSING_COOKIES
        if self.denied:
            return Reason.UNREADABLE
        if self.file_type not in (None, "file"):
            return Reason.NOT_A_FILE
        if self.error is not None:
            return Reason.CORRUPT_COOKIES
        if self.logged_in:
            return None
        return Reason.EXPIRED if self.login_expired else Reason.LOGGED_OUT


# --- validations, jobs, refreshes ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Validation:
    """One validation's outcome; `reason` is the verdict after the account check and diagnosis."""

    ok: bool
    reason: Reason | None
    started_at: float
    at: float
    trigger: str
    url: str | None = None
    message: str = ""
    account_cookies: bool = False
    offline: bool = False
    media_reason: Reason | None = None  # the media probe's own failure, before any diagnosis
    account_ok: bool | None = None  # the account check: None when it did not run
    bare_ok: bool | None = None  # the cookie-less probe: None when it did not run
    diagnosis: Reason | None = None  # ip_flagged, po_token_required, account_restricted
    read_error: str | None = None  # the daemon could not read the jar (errno): no verdict at all
    # How long it took on the monotonic clock (the runtime's measure): a wall clock stepped
    # meanwhile must neither stretch the duration by the step nor squash it to nothing.
    took: float | None = None

    @property
    def duration(self) -> float:
        if self.took is not None:
            return max(0.0, self.took)
        return max(0.0, self.at - self.started_at)

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
            "started_at": self.started_at,
            "duration_seconds": round(self.duration, 3),
            "trigger": self.trigger,
            "url": self.url,
            "offline": self.offline,
            "account_cookies": self.account_cookies,
            "media": self.media_reason.value if self.media_reason else ("ok" if self.ok else None),
            "account_check": None if self.account_ok is None else self.account_ok,
            "diagnosis": self.diagnosis.value if self.diagnosis else None,
            "read_error": self.read_error,
            "message": self.message,
        }


class FinishedJob(Protocol):
    """A refresh job that reached a final state, as read from Bull (bull.FinishedJob)."""

    @property
    def job_id(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def outcome(self) -> Literal["completed", "failed"]: ...
    @property
    def finished_at(self) -> float: ...
    @property
    def created_at(self) -> float: ...
    @property
    def attempts_made(self) -> int: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class PendingJob:
    """How far the source's pending job got: created (epoch s), and taken by a worker (the
    time it went `active`) or None while it waits (or is delayed between attempts)."""

    created_at: float
    taken_at: float | None = None


@dataclass(frozen=True, slots=True)
class Owed:
    """A refresh that could not be asked for (Redis down), kept until it can be or is moot."""

    reason: Reason
    at: float
    origin: str
    force: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason.value,
            "at": self.at,
            "origin": self.origin,
            "force": self.force,
        }


def judged_key(job_id: str, finished_at: float) -> str:
    """A finished job's name in the record of judged jobs: its id and its end (ms). The end
    tells a job apart from a later one that reuses its id after a flush or an obliterate."""
    return f"{job_id}@{round(finished_at * 1000)}"


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long one login session lived, and when it was seen to end."""

    seconds: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class Usable:
    """Whether a source's cookies are usable (`GET /api/cookies/health`), and since when.

    `reason` is None when usable, else why not: the file's problem, the reason the last
    conclusive validation failed, or `not_inspected` before the file was first looked at."""

    reason: str | None
    since: float | None  # None: not known yet (before the first inspection)

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def rank(self) -> int:
        """Higher is worse: any unusable source outranks every usable one."""
        if self.reason is None:
            return -1
        try:
            return Reason(self.reason).rank
        except ValueError:
            return 0
