"""Every decision the daemon takes, as a pure function: `step(state, event, now) -> effects`.

Events say what happened (a file was inspected, a validation finished, the queue was observed, a
timer fired, someone asked for a refresh, Redis went away). Effects say what to do (enqueue a job,
run a validation, arm a timer, count, log, notify). Nothing here does I/O, awaits, reads a clock or
touches prometheus-client: the runtime (`supervisor.py`) carries effects out and feeds their results
back as events, and tests drive this module with a fake clock (tests/test_core.py).

The rule behind every refresh: a job costs a browser login on a real account, so one is asked for
only while evidence that fresh cookies fix the failure *stands* — and that evidence is looked at
again whenever a request is refused (cooldown, backoff), a job fails or vanishes, or Redis returns.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cookie_supervisor.backoff import backoff_delay
from cookie_supervisor.classify import Reason, classify, diagnose, normalize, redact, strongest
from cookie_supervisor.model import (
    LIFETIMES_KEPT,
    NOT_INSPECTED,
    SESSIONS_KEPT,
    VERDICTS,
    WALL_TIMERS,
    CookieReport,
    CounterName,
    FinishedJob,
    HistogramName,
    Lifetime,
    NotifyEvent,
    Now,
    Origin,
    Owed,
    PendingJob,
    Policy,
    TimerKey,
    TriggerState,
    Usable,
    Validation,
    Verdict,
    as_now,
    judged_key,
)

# The shared vocabulary, re-exported while the runtime and the tests still name it `core.X`.
__all__ = [
    "LIFETIMES_KEPT",
    "NOT_INSPECTED",
    "SESSIONS_KEPT",
    "VERDICTS",
    "WALL_TIMERS",
    "CookieReport",
    "FinishedJob",
    "Lifetime",
    "Now",
    "Origin",
    "Owed",
    "PendingJob",
    "TimerKey",
    "TriggerState",
    "Usable",
    "Validation",
    "Verdict",
    "as_now",
    "backoff_delay",
    "judged_key",
]

# --- vocabulary ---------------------------------------------------------------------------------

# The file's own state while an upload may still be writing it: not a verdict on a refresh.
_FILE_STATES = frozenset(
    {Reason.MISSING_COOKIES, Reason.CORRUPT_COOKIES, Reason.UNREADABLE, Reason.NOT_A_FILE}
)
HISTORY = 20  # finished jobs kept per source for the success ratio
LEARN_FROM = 3  # the latest lifetimes the learned renewal and the lifetime median look at
LEARN_WINDOW = 7 * 86400.0  # ... among deaths this recent, when rotation is off (else rotate_after)
LEARNED_SHARE = 2 / 3  # renew at this share of their median (cert-manager renews at 2/3)
REQUESTED_KEPT = 16  # jobs we enqueued and still wait to see finish
# Offline problems that a file change can make and unmake: each waits out a grace period first.
FILE_PROBLEMS = frozenset(
    {
        Reason.MISSING_COOKIES,
        Reason.CORRUPT_COOKIES,
        Reason.LOGGED_OUT,
        Reason.EXPIRED,
        Reason.UNREADABLE,
        Reason.NOT_A_FILE,
    }
)
# Reports whose text may or may not be about the cookies: a validation decides (see docs/core.md).
_AMBIGUOUS_WORDS = (
    "private video",
    "video is private",
    "members",
    "join this channel",
    "sign in to confirm your age",
    "age-restricted",
    "age restricted",
    "inappropriate for some users",
)
# People asking: the evidence is their word, so it is neither filtered nor re-checked.
_PEOPLE = frozenset({"cli"})
_REPORTERS = frozenset({"api", "report"})
_NOT_HONOURED = frozenset({Reason.LOGGED_OUT, Reason.COOKIES_ROTATED})
_ROTATIONS = frozenset({Reason.SCHEDULED_ROTATION, Reason.EXPIRING_SOON})
_MEDIA_DIAGNOSED = frozenset({Reason.BOT_DETECTION, Reason.FORBIDDEN, Reason.PO_TOKEN_REQUIRED})


# --- data ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Verification:
    job_id: str
    deadline: float
    session_at: float | None = None  # when the new session arrived
    reason: str | None = None  # why the job was asked (the webhook events' `reason`)
    created_at: float = 0.0  # the job's creation: with the id, what names it across queue resets
    # the job's judged key: the state file leaves it out of the record while the verification is
    # open, so a restart books the job again and its verdict is not lost (D6)
    key: str = ""
    # the upload rewrote the session already there (D14): a pass renews nothing
    same_session: bool = False
    asked_at: float = 0.0  # wall: when the job was asked (ours) or created
    ended_at: float = 0.0  # wall: when this daemon saw the job end
    asked_mono: float | None = None  # the same moment as asked_at on the monotonic clock


@dataclass(slots=True)
class Spell:
    """A standing problem that was logged at WARNING: since when, and how often it was seen
    again (repeats are counted here, and told once, in the INFO line that ends it)."""

    since: float
    repeats: int = 0


@dataclass(slots=True)
class Source:
    settings: Policy  # what the core applies to this source (config.SourceSettings.policy)
    report: CookieReport | None = None  # the last report that said something about the file
    last_good: CookieReport | None = None  # the last report of a logged-in jar
    read_error: str | None = None  # errno name while the daemon itself cannot read the file
    problem: Reason | None = None
    problem_since: float | None = None
    problem_confirm_at: float | None = None  # the problem counts as evidence from then on
    # What names this spell of the problem for its webhook event: the file as every daemon sees
    # it (so daemons sharing the jar make one event id), else the time this daemon saw it start.
    problem_key: str | None = None
    sessions: dict[str, float] = field(default_factory=dict)  # fingerprint → first seen
    session: str | None = None
    # How long sessions lived, oldest first: seen arrive, then seen die (session_ended).
    lifetimes: dict[str, Lifetime] = field(default_factory=dict)  # by fingerprint
    unmeasured: str | None = None  # the first session ever: its arrival is a guess (mtime)
    seen_alive: str | None = None  # the session a validation begun after its arrival passed on
    ended: str | None = None  # the last session whose end was observed
    owed: Owed | None = None
    pending_job: str | None = None
    pending_reason: Reason | None = None
    pending_progress: PendingJob | None = None  # as of the last poll (or our own enqueue)
    requested: dict[str, float] = field(default_factory=dict)  # job id → when we enqueued it
    # a peer's job id → when this daemon first saw it pending (wall, on our clock: the job's
    # creation time is the enqueuing host's clock)
    watched: dict[str, float] = field(default_factory=dict)
    # Orders this run's observations on the monotonic clock, which no clock step moves (N5):
    # job id → when asked or first seen pending; session → when first seen.
    asked_mono: dict[str, float] = field(default_factory=dict)
    arrived_mono: dict[str, float] = field(default_factory=dict)
    last_validation: Validation | None = None
    validated_ok_at: float | None = None
    # Why fresh cookies cannot help (ip_flagged, po_token_required, account_restricted), found by
    # this daemon: it stands until something newer contradicts it (P1), not until the next run.
    diagnosed: Reason | None = None
    shared_diagnosis: Reason | None = None  # what another daemon found, as Redis holds it
    reset_by: str | None = None  # the session whose passing validation last reset the backoff
    rewritten_at: float | None = None  # wall time the daemon last saw the logged-in jar change
    validating: bool = False
    verifying: Verification | None = None
    history: deque[FinishedJob] = field(default_factory=lambda: deque(maxlen=HISTORY))
    failures: int = 0  # consecutive unsuccessful refreshes (mirrors Redis)
    backoff_until: float | None = None
    retry_at: float | None = None
    rotation_armed: float | None = None  # the due date the rotation timer is set for
    requesting: bool = False  # an Enqueue of ours awaits its answer
    announced: set[str] = field(default_factory=set)  # notifications already sent this spell
    verdict: Validation | None = None  # the last conclusive validation (a pass or a fixable fail)
    usable: Usable | None = None  # the health gate's answer and since when (`track_usable`)
    warned: dict[str, Spell] = field(default_factory=dict)  # standing problems already logged

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def session_since(self) -> float | None:
        return self.sessions.get(self.session) if self.session else None

    @property
    def success_ratio(self) -> float | None:
        """Share of the last finished jobs that completed; None before any finished."""
        if not self.history:
            return None
        return sum(j.outcome == "completed" for j in self.history) / len(self.history)

    def backoff_ends(self, now: float) -> float | None:
        """When automatic refreshes may ask again, while that is still ahead."""
        until = self.backoff_until
        return until if until is not None and until > now else None

    @property
    def diagnosis(self) -> Reason | None:
        """The standing diagnosis: this daemon's own, else the one a peer shared through Redis."""
        return self.diagnosed or self.shared_diagnosis

    def rotation(self) -> tuple[float, Reason] | None:
        """When a logged-in jar should be replaced ahead of trouble, and why."""
        cfg, r = self.settings, self.report
        if r is None or not r.logged_in:
            return None
        plans = []
        # The session's age, not the file's: the backend's yt-dlp rewrites the file after every
        # download, so its mtime says nothing about how old the cookies are.
        if cfg.rotate_after > 0 and (since := self.session_since) is not None:
            plans.append((since + cfg.rotate_after, Reason.SCHEDULED_ROTATION))
            if (learned := learned_renewal(self)) is not None:  # the earlier of the two wins
                plans.append((learned, Reason.SCHEDULED_ROTATION))
        if cfg.renew_before > 0 and r.login_expires_at is not None:
            plans.append((r.login_expires_at - cfg.renew_before, Reason.EXPIRING_SOON))
        return min(plans) if plans else None


@dataclass(slots=True)
class State:
    sources: dict[str, Source]
    redis_up: bool | None = None  # None: not known yet
    counts: dict[str, int] | None = None
    history_recovered: bool = False
    redis_down: Spell | None = None  # the Redis outage logged at WARNING
    # Finished jobs already booked, by `judged_key`: each is judged once, whatever its finishedOn
    # says. None: nothing known (first run) — what Redis holds at the first look is history.
    judged: set[str] | None = None

    @classmethod
    def of(cls, policies: list[Policy]) -> State:
        return cls({p.name: Source(p) for p in policies})

    @property
    def default_source(self) -> str:
        return next(iter(self.sources))


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInspected:
    source: str
    report: CookieReport


@dataclass(frozen=True, slots=True)
class ValidationFinished:
    source: str
    validation: Validation


@dataclass(frozen=True, slots=True)
class QueueObserved:
    """One poll of Redis: pending job per source, finished jobs, and jobs that vanished."""

    pending: dict[str, str | None]
    finished: tuple[FinishedJob, ...] = ()
    vanished: frozenset[str] = frozenset()
    counts: dict[str, int] | None = None
    diagnoses: dict[str, Reason | None] | None = None  # shared through Redis; None: not read
    progress: dict[str, PendingJob] = field(default_factory=dict)  # by source, pending jobs only
    # judged keys of every finished job the read saw (booked or not): the record keeps only
    # those, so it stays as small as Redis's own retention. None: keep the record as it is.
    window: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RedisDown:
    error: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    source: str
    key: TimerKey


@dataclass(frozen=True, slots=True)
class RefreshAsked:
    source: str
    reason: Reason
    origin: Origin
    force: bool = False
    error: str | None = None
    video_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshAnswered:
    """What Redis answered an Enqueue: state plus the job id and seconds to wait, if any."""

    source: str
    reason: Reason
    origin: Origin
    state: TriggerState
    job_id: str | None = None
    retry_after: float | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class BackoffObserved:
    source: str
    failures: int
    until: float | None


Event = (
    FileInspected
    | ValidationFinished
    | QueueObserved
    | RedisDown
    | TimerFired
    | RefreshAsked
    | RefreshAnswered
    | BackoffObserved
)


# --- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enqueue:
    source: str
    reason: Reason
    origin: Origin
    force: bool = False
    error: str | None = None
    video_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RunValidation:
    source: str
    trigger: str
    diagnose: bool = False  # also probe without cookies when the media probe fails


@dataclass(frozen=True, slots=True)
class Inspect:
    source: str


@dataclass(frozen=True, slots=True)
class Arm:
    source: str
    key: TimerKey
    at: float


@dataclass(frozen=True, slots=True)
class Cancel:
    source: str
    key: TimerKey


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """Tell Redis how a refresh ended: the shared backoff counts it (idempotent per job)."""

    source: str
    job_id: str | None
    ok: bool


@dataclass(frozen=True, slots=True)
class ResetBackoff:
    source: str


@dataclass(frozen=True, slots=True)
class ShareDiagnosis:
    """Tell every daemon on the Redis why fresh cookies cannot help (None: that no longer holds).
    It expires after `ttl` seconds unless a validation confirms it again."""

    source: str
    diagnosis: Reason | None
    ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class Count:
    metric: CounterName
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Observe:
    metric: HistogramName
    source: str
    value: float


@dataclass(frozen=True, slots=True)
class Log:
    level: int
    message: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notify:
    event: NotifyEvent
    source: str
    key: str  # what happened, so two daemons seeing the same thing make the same event id
    summary: str
    reason: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome handed back to whoever asked (the API, the CLI, a report follower)."""

    state: TriggerState
    source: str
    reason: Reason
    message: str
    job_id: str | None = None
    retry_after: float | None = None

    forced: bool = False  # `force` made this job (past the cooldown or backoff, if any)

    @property
    def triggered(self) -> bool:
        """A job was made, is pending, or is owed: a refresh is on its way."""
        return self.state in _ON_ITS_WAY


_ON_ITS_WAY = frozenset({"enqueued", "coalesced", "deferred"})


@dataclass(frozen=True, slots=True)
class Persist:
    """Something the state file keeps has changed."""


Effect = (
    Enqueue
    | RunValidation
    | Inspect
    | Arm
    | Cancel
    | RecordOutcome
    | ResetBackoff
    | ShareDiagnosis
    | Count
    | Observe
    | Log
    | Notify
    | Answer
    | Persist
)


# --- the step -----------------------------------------------------------------------------------


def step(state: State, event: Event, now: Now | float) -> list[Effect]:
    """Apply `event` to `state` at time `now`; return what the runtime should do.

    A plain number is both clocks (tables, and worlds without clock steps)."""
    now = as_now(now)
    fx = _step(state, event, now)
    return fx + _problem_lines(state, event, now)


def _step(state: State, event: Event, now: Now) -> list[Effect]:
    match event:
        case FileInspected():
            return _file_inspected(state, state.sources[event.source], event.report, now)
        case ValidationFinished():
            return _validation_finished(state, state.sources[event.source], event.validation, now)
        case QueueObserved():
            return _queue_observed(state, event, now)
        case RedisDown():
            return _redis_down(state, event, now)
        case TimerFired():
            return _timer_fired(state, state.sources[event.source], event.key, now)
        case RefreshAsked():
            return _refresh_asked(state, state.sources[event.source], event, now)
        case RefreshAnswered():
            return _refresh_answered(state, state.sources[event.source], event, now)
        case BackoffObserved():
            src = state.sources[event.source]
            src.failures, src.backoff_until = event.failures, event.until
            return []
    raise TypeError(f"not an event: {event!r}")


# --- the cookie file ----------------------------------------------------------------------------


def _file_inspected(state: State, src: Source, report: CookieReport, now: Now) -> list[Effect]:
    if report.os_error is not None:
        # The daemon could not read the file (descriptors, memory, I/O): its own trouble.
        return _read_error(src, report.os_error, now)
    fx: list[Effect] = []
    src.read_error = None  # readable again: the INFO line ends the spell after this step
    previous, src.report = src.report, report
    changed = previous is not None and _signature(previous) != _signature(report)
    new_session = _track_session(src, report, now, fx)
    _track_problem(src, previous, report, now, fx)
    logged_in = report.logged_in_at(now.wall)  # on the core's clock, not the inspection's
    if logged_in:
        src.last_good = report
    if (dead := _file_evidence(src, now)) in _SESSION_ENDS:
        fx += session_ended(src, src.problem_since or now.wall, dead)
    if changed:
        fx.append(Count("file_changes_total", (src.name,)))
        fx.append(
            _log(
                logging.INFO,
                "cookie file changed",
                src,
                exists=report.exists,
                valid=report.valid,
                logged_in=report.logged_in,
                new_session=new_session,
            )
        )
    if changed and report.exists:
        src.rewritten_at = now.wall  # a write, whatever it holds: perhaps a refresh's upload
    if new_session and src.verifying is not None:
        # The latest session is the refresh's, also after a rewrite of the old one (D14).
        src.verifying.session_at, src.verifying.same_session = now.wall, False
    elif _arrived_during_job(src):
        # A job booked again after a restart: the session it uploaded was seen before (D6).
        assert src.verifying is not None
        src.verifying.session_at = src.session_since
        fx += _validate(src, "verification")
    elif (changed or previous is None) and _written_by_job(src, report):
        # The extractor wrote the jar, then reported; the watcher saw the write late, or the
        # daemon was down when it happened (D14): the mtime places it in the job.
        assert src.verifying is not None
        src.verifying.session_at, src.verifying.same_session = now.wall, True
        fx += _validate(src, "verification")
    if logged_in and (new_session or (changed and _awaiting_verification(src))):
        # A rewrite of the same session by the backend's yt-dlp is not new evidence, and
        # validating each one would hammer YouTube.
        fx += _validate(src, "verification" if src.verifying else "file")
    fx += _arm_rotation(src, now)
    fx += _pursue(state, src, now, origin="file")
    track_usable(src, now)
    return fx


def _arrived_during_job(src: Source) -> bool:
    ver = src.verifying
    if ver is None or ver.session_at is not None:
        return False
    return _session_after(src, ver)


def _session_after(src: Source, ver: Verification) -> bool:
    """The current session was first seen after the job was asked: on the monotonic clock when
    this run saw both, else on the wall clock."""
    if (first_seen := src.session_since) is None or src.session is None:
        return False
    if ver.asked_mono is not None and (mono := src.arrived_mono.get(src.session)) is not None:
        return mono > ver.asked_mono
    return first_seen > ver.asked_at


def _written_by_job(src: Source, report: CookieReport) -> bool:
    """A write the daemon sees after the job ended, made while the job ran (by the jar's mtime):
    the job's upload of the session already there, not the backend's yt-dlp saving it later."""
    ver = src.verifying
    if ver is None or ver.session_at is not None or not report.exists or report.mtime is None:
        return False
    return ver.asked_at < report.mtime <= ver.ended_at


def _read_error(src: Source, errno: str, now: Now) -> list[Effect]:
    fx: list[Effect] = [Count("file_read_errors_total", (src.name, errno))]
    if (spell := src.warned.get("read_error")) is not None:
        spell.repeats += 1  # one ERROR line per spell, whichever errno comes next
    else:
        src.warned["read_error"] = Spell(now.mono)
        fx.append(
            _log(
                logging.ERROR,
                _PROBLEM_TEXT["read_error"],
                src,
                problem="read_error",
                errno=errno,
            )
        )
    src.read_error = errno
    return fx


def _track_session(src: Source, report: CookieReport, now: Now, fx: list[Effect]) -> bool:
    """Record the report's login session; True when it was never seen for this source before."""
    fp = report.fingerprint
    if fp is None:
        return False
    src.session = fp
    if fp in src.sessions:
        return False
    first_ever = not src.sessions
    # With no memory of any session (first run ever), the file's mtime is the best guess of
    # when this one arrived; later sessions arrived when we saw them.
    src.sessions[fp] = min(report.mtime or now.wall, now.wall) if first_ever else now.wall
    if not first_ever:
        src.arrived_mono[fp] = now.mono
        while len(src.arrived_mono) > SESSIONS_KEPT:
            del src.arrived_mono[next(iter(src.arrived_mono))]
    if first_ever:
        src.unmeasured = fp  # a guessed arrival makes no lifetime
    while len(src.sessions) > SESSIONS_KEPT:
        del src.sessions[min(src.sessions, key=src.sessions.__getitem__)]
    fx.append(Persist())
    if first_ever:
        return False
    # Not a reset of the backoff: every refresh uploads a new session, and one that YouTube does
    # not honour is one more unsuccessful refresh. Only a validation that passes resets (P6).
    src.announced.discard("cookies_expiring")
    fx.append(_log(logging.INFO, "new login session", src))
    return True


def _track_problem(
    src: Source, previous: CookieReport | None, report: CookieReport, now: Now, fx: list[Effect]
) -> None:
    """Start, keep or end the current offline problem, with its grace period."""
    problem = report.problem_at(now.wall)
    if problem == src.problem:
        return
    src.problem = problem
    if problem is None:
        src.problem_since = src.problem_confirm_at = None
        src.announced.difference_update(event for event, _ in _PROBLEM_EVENTS.values())
        fx.append(Cancel(src.name, "grace"))
        return
    src.problem_since = now.wall
    src.problem_key = _problem_key(problem, previous, report)
    grace = _grace(src.settings, problem, previous, report)
    if problem in (Reason.LOGGED_OUT, Reason.EXPIRED) and _shrank(src.last_good, report):
        # An upload written in place (truncate, then chunks) passes through an empty or
        # unparseable file first: measure the shrink against the last logged-in jar (D10).
        grace = max(grace, src.settings.logged_out_confirm)
    src.problem_confirm_at = now.mono + grace  # an interval: monotonic
    if src.problem_confirm_at > now.mono:
        fx.append(Arm(src.name, "grace", src.problem_confirm_at))
    else:
        fx += _announce_problem(src, now)


# The file problems that have a webhook event of their own, once past their grace.
_PROBLEM_EVENTS: dict[Reason, tuple[NotifyEvent, str]] = {
    Reason.MISSING_COOKIES: ("file_missing", "cookie file missing past its grace"),
    Reason.LOGGED_OUT: ("logged_out", "the cookie file holds no login yt-dlp accepts"),
    Reason.EXPIRED: ("cookies_expired", "the login cookies have expired"),
}


def _problem_key(
    problem: Reason, previous: CookieReport | None, report: CookieReport
) -> str | None:
    """The file's own identity: the jar that went missing (its last mtime and size), or the jar
    that is logged out or expired; None when the file offers none (the start time names it)."""
    seen = previous if problem is Reason.MISSING_COOKIES else report
    if seen is not None and seen.mtime is not None:
        return f"{problem.value}:{seen.mtime:.6f}:{seen.size}"
    return None


def _announce_problem(src: Source, now: Now) -> list[Effect]:
    """The event of the file's problem, once per spell of it."""
    found = _PROBLEM_EVENTS.get(src.problem) if src.problem is not None else None
    if found is None or found[0] in src.announced:
        return []
    event, summary = found
    src.announced.add(event)
    key = src.problem_key or f"{src.problem_since or now.wall:.0f}"
    assert src.problem is not None
    return [_notify(event, src, key, summary, src.problem.value)]


def _grace(
    cfg: Policy, problem: Reason, previous: CookieReport | None, report: CookieReport
) -> float:
    """How long an offline problem must last before it is evidence: uploads delete, rename,
    truncate and write in chunks, and each of those looks like a problem for a moment."""
    if problem is Reason.MISSING_COOKIES:
        return cfg.missing_grace
    if problem is Reason.CORRUPT_COOKIES:
        return cfg.corrupt_grace
    if problem in (Reason.LOGGED_OUT, Reason.EXPIRED) and _shrank(previous, report):
        return cfg.logged_out_confirm
    return 0.0


def _shrank(previous: CookieReport | None, report: CookieReport) -> bool:
    if previous is None or not previous.valid:
        return False
    return (report.size or 0) < (previous.size or 0) or report.cookies < previous.cookies


def _signature(r: CookieReport) -> tuple[Any, ...]:
    return (r.exists, r.size, r.mtime, r.mode, r.error, r.fingerprint, r.cookies)


def _file_evidence(src: Source, now: Now) -> Reason | None:
    """The offline problem once it has outlasted its grace period."""
    if src.problem is None or src.problem_confirm_at is None or now.mono < src.problem_confirm_at:
        return None
    return src.problem


# --- rotation -----------------------------------------------------------------------------------


def _arm_rotation(src: Source, now: Now) -> list[Effect]:
    """(Re)arm the rotation timer when its date changed: most inspections leave it as it was."""
    plan = src.rotation()
    due = plan[0] if plan is not None else None
    if due == src.rotation_armed:
        return []
    src.rotation_armed = due
    if due is None:
        return [Cancel(src.name, "rotation")]
    return [Arm(src.name, "rotation", max(due, now.wall))]


def _rotation_evidence(src: Source, now: Now) -> Reason | None:
    plan = src.rotation()
    return plan[1] if plan is not None and plan[0] <= now.wall else None


# --- how long sessions live ---------------------------------------------------------------------

# Evidence that the current session is over: YouTube cleared it (the account check, yt-dlp's
# rotation warning), or the file says so once its grace has passed (logged out, expired).
_SESSION_ENDS = frozenset({Reason.LOGGED_OUT, Reason.COOKIES_ROTATED, Reason.EXPIRED})


def session_ended(src: Source, at: float, why: Reason) -> list[Effect]:
    """The current session was seen to end at `at`: observe how long it lived, once, and keep it
    for the learned renewal when it is an unbiased sample.

    Only sessions seen alive (a validation begun after their arrival passed) and then seen to
    die count. One replaced while YouTube still took it (a renewal, a person's refresh) lived at
    least that long, no more is known; one that never passed was dead on arrival (a refresh that
    did not help), not short-lived; nothing ends while a refresh of ours is on its way (an
    upload caught mid-write looks logged out). And a session that lived under the learned
    renewal could only be seen to die younger than that renewal (the older ones were renewed
    first): it is observed, not learned from. Learning from any of these shortens the renewal at
    every turn, more logins and shorter "lifetimes" (the simulator found that spiral, seed
    7000142, when deaths come at random ages).
    """
    fp, since = src.session, src.session_since
    if fp is None or since is None or fp in (src.ended, src.unmeasured) or fp in src.lifetimes:
        return []
    if src.seen_alive != fp:
        return []
    if src.requesting or src.pending_job is not None or src.verifying is not None:
        return []
    src.ended = fp
    lifetime = max(0.0, at - since)
    learned = learned_renewal(src)
    fx: list[Effect] = [
        Observe("login_session_lifetime_seconds", src.name, lifetime),
        _log(logging.INFO, "login session ended", src, why=why, lifetime_seconds=round(lifetime)),
    ]
    if learned is not None and learned < since + src.settings.rotate_after:
        return fx  # lived under the learned renewal: a truncated sample
    src.lifetimes[fp] = Lifetime(lifetime, at)
    while len(src.lifetimes) > LIFETIMES_KEPT:
        del src.lifetimes[next(iter(src.lifetimes))]
    return [*fx, Persist()]


def lifetime_median(src: Source) -> float | None:
    """The median lifetime of the last LEARN_FROM sessions seen to die, among those that died
    within `rotate_after` (LEARN_WINDOW with rotation off) before the current session arrived;
    None before that many.

    The window is how the renewal unlearns: sessions renewed in time die no more, so nothing
    new is learned from them; without it, three bad days (a browser that kept using the export)
    would renew every hour for ever after the export was fixed. With it the renewal goes back to
    `rotate_after` a window after the last death, and learns again from the next three.
    """
    window = src.settings.rotate_after if src.settings.rotate_after > 0 else LEARN_WINDOW
    known = list(src.lifetimes.values())
    if not known:
        return None
    since = src.session_since
    reference = since if since is not None else known[-1].ended_at
    recent = [x.seconds for x in known if x.ended_at >= reference - window][-LEARN_FROM:]
    return float(statistics.median(recent)) if len(recent) >= LEARN_FROM else None


def learned_renewal(src: Source) -> float | None:
    """When to renew the current session by what the last ones lived: 2/3 of their median after
    it arrived. `rotation()` takes it when it comes before `rotate_after`; with rotation off
    (`rotate_after = 0`) there is none either."""
    median, since = lifetime_median(src), src.session_since
    if src.settings.rotate_after <= 0 or median is None or since is None:
        return None
    return since + LEARNED_SHARE * median


# --- what is needed now -------------------------------------------------------------------------


def need(src: Source, now: Now | float) -> Reason | None:
    """The refresh the evidence calls for right now, if any (before trigger_on and brakes)."""
    now = as_now(now)
    if src.read_error is not None:
        return None
    v = src.last_validation
    # A standing diagnosis says fresh cookies cannot help: neither a failed validation nor a due
    # rotation is worth a login then (P1). The file's own problems still are.
    diagnosed = src.diagnosis is not None
    candidates = [
        _file_evidence(src, now),
        # A failed validation stands until one passes; the file's own problems speak for
        # themselves.
        # (An offline run's reason is the file's problem, which speaks for itself with its
        # grace; an account check saying logged_out is not the file's and counts here.)
        v.reason if v is not None and not v.offline and not diagnosed else None,
        None if diagnosed else _rotation_evidence(src, now),
    ]
    # trigger_on filters each piece of evidence, before the strongest is chosen: a reason the
    # source does not act on must not hide one it does.
    found: Reason | None = None
    for reason in candidates:
        if reason is not None and reason.fixable and reason in src.settings.trigger_on:
            found = strongest(found, reason)
    return found


def _pursue(state: State, src: Source, now: Now, *, origin: Origin) -> list[Effect]:
    """Ask for the refresh the evidence calls for, unless one is pending or already owed."""
    reason = need(src, now)
    if reason is None or src.pending_job is not None or src.verifying is not None:
        return []
    if src.requesting or src.validating:
        return []  # an answer or a validation is on its way and will pursue again
    if src.retry_at is not None and now.mono < src.retry_at:
        return []  # refused recently; the retry timer comes back
    if state.redis_up is False:
        return _owe(src, Owed(reason, now.wall, origin), quiet=True)
    # Several daemons may pursue the same need: Redis's marker and cooldown make it one job.
    src.requesting = True
    if reason in _ROTATIONS:
        origin = "rotation"  # whatever woke us, the calendar asked
    return [Enqueue(src.name, reason, origin)]


def _person(owed: Owed) -> bool:
    return owed.force or owed.origin in _PEOPLE or owed.reason is Reason.MANUAL


def _owe(src: Source, owed: Owed, *, quiet: bool = False) -> list[Effect]:
    """Keep the strongest refresh owed — but a person's request is never merged into an automatic
    one (that would drop it with the automatic one's cause): it is paid as theirs (P4)."""
    before = src.owed
    if before is not None and _person(before) and not _person(owed):
        return []
    if before is not None and _person(owed) and not _person(before):
        before = None
    if before is not None and before.reason.rank >= owed.reason.rank and not owed.force:
        return []
    src.owed = Owed(
        strongest(before.reason if before else None, owed.reason),
        before.at if before else owed.at,
        owed.origin,
        owed.force or (before.force if before else False),
    )
    fx: list[Effect] = [Persist()]
    if before is None and not quiet:
        # INFO: the outage itself is the one WARNING line (see _redis_down)
        fx.append(_log(logging.INFO, "redis unavailable; refresh owed", src, reason=owed.reason))
    return fx


def still_owed(src: Source, owed: Owed, now: Now | float) -> bool:
    """Is an owed refresh still called for? A person's request is; evidence is looked at again."""
    now = as_now(now)
    if owed.force or owed.origin in _PEOPLE or owed.reason is Reason.MANUAL:
        return True
    if owed.reason in FILE_PROBLEMS:
        return _file_evidence(src, now) == owed.reason
    if owed.reason in _ROTATIONS:
        return _rotation_evidence(src, now) is not None
    # An offline look at the jar says nothing about what the backend reported (D4).
    v = src.last_validation
    return not (v is not None and v.ok and not v.offline and v.at >= owed.at)


# --- validation ---------------------------------------------------------------------------------


def _validate(src: Source, trigger: str, *, diagnose: bool = False) -> list[Effect]:
    if src.validating:
        return []  # one in flight per source; its result serves this request too
    src.validating = True
    # A standing diagnosis is confirmed or dropped by every run: the cookie-less probe too.
    return [RunValidation(src.name, trigger, diagnose or src.diagnosis is not None)]


def settles(ok: bool, reason: Reason | None) -> bool:
    """Does one media probe speak for the cookies? A pass or a fixable failure does; a removed
    video or an outage lets the next validation URL speak instead."""
    return ok or (reason is not None and reason.fixable)


def wants_account_check(media: Reason | None) -> bool:
    """The account check adds nothing when the media probe failed for a reason that is not the
    cookies' (the network is down: the account check would say the same)."""
    return media is None or media.fixable


def wants_diagnosis(media: Reason | None, account_ok: bool | None, asked: bool) -> bool:
    """Probe once more without cookies? Only when a media failure may not be the cookies'."""
    if media not in _MEDIA_DIAGNOSED:
        return False
    return asked or account_ok is True or media is Reason.PO_TOKEN_REQUIRED


def conclude(
    media: Reason | None, account: Reason | None, account_ran: bool, without: Reason | bool | None
) -> tuple[Reason | None, Reason | None]:
    """(verdict, diagnosis) from the media probe, the account check and the cookie-less probe.

    `without` is False when the cookie-less probe did not run, else its failure or None (passed).
    """
    if account_ran and account in _NOT_HONOURED:
        return account, None  # the session is not honoured: that is the cookies, whatever else
    if media is None:
        return None, None
    if without is False:
        return media, None
    found = diagnose(media, without if isinstance(without, Reason) else None)
    return (found, found) if found is not None else (media, None)


# The pipeline as data: the runtime asks `next_probe` what to run until it says nothing more, and
# `validation_of` reads the parts. Every choice on the way is here, pure, where the simulator and
# the tables reach it; the runtime only runs yt-dlp.

ProbeKind = Literal["media", "account", "bare"]  # bare: the media probe again, without cookies


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One yt-dlp run the pipeline wants next."""

    kind: ProbeKind
    url: str


@dataclass(frozen=True, slots=True)
class ProbeSaid:
    """What one run said: its failure reason (None: it passed), redacted message, and whether
    yt-dlp found account cookies."""

    kind: ProbeKind
    url: str
    reason: Reason | None
    message: str = ""
    account_cookies: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class ValidationPlan:
    media_urls: tuple[str, ...]
    account_url: str | None  # None: no account check
    diagnose: bool  # asked for, or a diagnosis stands and must be confirmed or dropped


def plan_validation(src: Source, asked: bool = False) -> ValidationPlan:
    """What a validation of `src` may run. A standing diagnosis makes every run probe without
    cookies too: when the bot wall also blocks the account check, only that keeps it standing."""
    cfg = src.settings
    return ValidationPlan(
        cfg.validation_urls, cfg.account_check_url, asked or src.diagnosis is not None
    )


def next_probe(plan: ValidationPlan, said: tuple[ProbeSaid, ...]) -> ProbeRun | None:
    """The next run, or None when the parts are complete."""
    media = [p for p in said if p.kind == "media"]
    if len(media) < len(plan.media_urls) and not (
        media and settles(media[-1].ok, media[-1].reason)
    ):
        return ProbeRun("media", plan.media_urls[len(media)])
    if not media:
        return None
    last = media[-1]
    account = next((p for p in said if p.kind == "account"), None)
    if account is None and plan.account_url and wants_account_check(last.reason):
        return ProbeRun("account", plan.account_url)
    account_ok = None if account is None else account.ok
    ran_bare = any(p.kind == "bare" for p in said)
    if not ran_bare and wants_diagnosis(last.reason, account_ok, plan.diagnose):
        return ProbeRun("bare", last.url)
    return None


def validation_of(
    said: tuple[ProbeSaid, ...], started: float, at: float, trigger: str, limit: int = 500
) -> Validation:
    """The verdict of a complete run of the pipeline (see `conclude`)."""
    media = [p for p in said if p.kind == "media"][-1]
    account = next((p for p in said if p.kind == "account"), None)
    bare = next((p for p in said if p.kind == "bare"), None)
    without: Reason | bool | None = False if bare is None else bare.reason
    verdict, diagnosis = conclude(
        media.reason, account.reason if account else None, account is not None, without
    )
    parts = [media.message, account.message if account else ""]
    return Validation(
        verdict is None,
        verdict,
        started,
        at,
        trigger,
        url=media.url,
        message=redact(" | ".join(p for p in parts if p), limit),
        account_cookies=media.account_cookies,
        media_reason=media.reason,
        account_ok=None if account is None else account.ok,
        diagnosis=diagnosis,
    )


def offline_validation(
    report: CookieReport, cfg: Policy, started: float, at: float, trigger: str
) -> Validation | None:
    """The verdict before any probe: the daemon cannot read the jar (no verdict at all), the
    jar's own problem, or — with no validation URLs — the offline check is all. None: probe."""
    if report.os_error is not None:
        message = f"the daemon cannot read the file: {report.os_error}"
        return Validation(
            False,
            Reason.OTHER,
            started,
            at,
            trigger,
            offline=True,
            message=message,
            read_error=report.os_error,
        )
    if (problem := report.problem_at(started)) is not None:
        message = f"offline check: {problem.value}"
        return Validation(False, problem, started, at, trigger, offline=True, message=message)
    if not cfg.validation_urls:  # downloads off
        return Validation(True, None, started, at, trigger, offline=True)
    return None


def _validation_finished(state: State, src: Source, v: Validation, now: Now) -> list[Effect]:
    src.validating = False
    if v.read_error is not None:
        # The daemon's own trouble (already counted as a read error): not a verdict on the
        # cookies, so no result, no alert-worthy failure, no notification.
        return []
    before, src.last_validation = src.last_validation, v
    if v.ok:
        src.validated_ok_at = v.at
    if v.conclusive:
        src.verdict = v
        track_usable(src, now)
    result = "ok" if v.ok else (v.reason or Reason.OTHER).value
    fx: list[Effect] = [
        Count("validation_runs_total", (src.name, result)),
        Observe("validation_duration_seconds", src.name, v.duration),
        _log(
            _validation_level(src, v),
            "validation passed" if v.ok else "validation failed",
            src,
            result=result,
            trigger=v.trigger,
            duration=round(v.duration, 3),
            offline=v.offline,
            diagnosis=v.diagnosis.value if v.diagnosis else None,
            detail=v.message,  # yt-dlp's verdict lines, already redacted by the probe
        ),
    ]
    if v.diagnosis is not None:
        fx.append(Count("validation_diagnoses_total", (src.name, v.diagnosis.value)))
    # From no result too (a start): the runtime keeps the incident each daemon announced, across
    # restarts and shared through Redis, and sends a failure once per incident and a recovery
    # only after a failure it announced (docs/bull.md §9).
    if (before is None or before.ok) and not v.ok:
        fx.append(_notify("validation_failed", src, f"{v.at:.0f}", f"failing: {result}", result))
    elif (before is None or not before.ok) and v.ok:
        fx.append(_notify("validation_recovered", src, f"{v.at:.0f}", "passing again", None))
    since = src.session_since
    if since is not None and v.started_at >= since:  # this validation speaks for this session
        if v.ok and not v.offline:
            src.seen_alive = src.session
        elif v.reason in _NOT_HONOURED:
            fx += session_ended(src, now.wall, v.reason)  # YouTube no longer takes it
    fx += _judge_verification(src, v)
    fx += _track_diagnosis(src, v)
    if v.ok and not v.offline:  # an offline pass could not look online (N2)
        fx += _reset_backoff(src, fx)
    fx += _pursue(state, src, now, origin="validation")
    return fx


def _track_diagnosis(src: Source, v: Validation) -> list[Effect]:
    """A diagnosis stands until something newer contradicts it: a validation that passed on the
    network, or an account check saying the session is dead (that is the cookies after all). A
    run the bot wall also blocked, or one that proved nothing (timeout, rate limit), keeps it."""
    before = src.diagnosis
    if v.diagnosis is not None:
        src.diagnosed = v.diagnosis
        fx: list[Effect] = [ShareDiagnosis(src.name, v.diagnosis, diagnosis_ttl(src.settings))]
        if before != v.diagnosis:
            fx.append(Persist())  # it stands across a restart too
            fx.append(
                _log(
                    logging.WARNING,
                    "diagnosis: fresh cookies cannot help",
                    src,
                    diagnosis=v.diagnosis,
                )
            )
        return fx
    contradicted = (v.ok and not v.offline) or v.reason in _NOT_HONOURED
    if before is None or not contradicted:
        return []
    src.diagnosed = src.shared_diagnosis = None
    return [
        ShareDiagnosis(src.name, None),
        Persist(),
        _log(
            logging.INFO,
            "diagnosis no longer stands",
            src,
            diagnosis=before,
            result="ok" if v.ok else v.reason,
        ),
    ]


def diagnosis_ttl(cfg: Policy) -> float:
    """How long a shared diagnosis stands in Redis without a validation confirming it: three
    validation periods (at least an hour), or a day for a source that only validates on demand."""
    return max(3 * cfg.validate_every, 3600.0) if cfg.validate_every > 0 else 86400.0


def _reset_backoff(src: Source, fx: list[Effect]) -> list[Effect]:
    """A validation passed on a session: the count of unsuccessful refreshes starts again, and a
    retry armed for the backoff is moot. Once per session (P6): a new session alone never resets
    it (every refresh uploads one, and one YouTube does not honour must count), and the same
    session passing again does not either — refreshes that bring back that session (D14) or a due
    rotation it cannot end must keep counting."""
    if any(isinstance(e, RecordOutcome) and e.ok for e in fx):
        src.reset_by = src.session
        return []  # a verified refresh: Redis resets the count as it books the job, once
    if src.failures <= 0 and src.backoff_until is None:
        return []
    if src.session is not None and src.session == src.reset_by:
        return []
    src.reset_by = src.session
    src.failures, src.backoff_until = 0, None
    out: list[Effect] = [ResetBackoff(src.name)]
    if src.retry_at is not None:
        src.retry_at = None
        out.append(Cancel(src.name, "retry"))
    return out


def _awaiting_verification(src: Source) -> bool:
    return src.verifying is not None and src.verifying.session_at is not None


def _judge_verification(src: Source, v: Validation) -> list[Effect]:
    ver = src.verifying
    # Only a validation that started on the new session speaks for the refresh: one that began
    # on the old jar and finished after the upload says nothing about the new cookies.
    if ver is None or ver.session_at is None or v.started_at < ver.session_at:
        return []
    if v.offline and v.ok:
        # Offline-only (no validation URLs): the jar looks logged in, nobody asked YouTube (N2).
        return _end_verification(src, "unverified")
    if not v.conclusive or (v.offline and v.reason in _FILE_STATES):
        # Inconclusive (rate limited, a diagnosis, the network) or the file caught mid-write:
        # the deadline ends it `unverified` if nothing conclusive comes (D3).
        return []
    verdict: Verdict = "verified" if v.ok else "still_failing"
    fx = _end_verification(src, verdict)
    if not v.ok:
        # Fresh cookies did not help: before asking again, find out whether they ever could.
        fx += _validate(src, "diagnosis", diagnose=True)
    return fx


def _end_verification(src: Source, verdict: Verdict) -> list[Effect]:
    ver = src.verifying
    assert ver is not None
    src.verifying = None
    ok = verdict == "verified"
    if ok and ver.same_session and src.session is not None and src.session == src.reset_by:
        ok = False  # it renewed nothing, and this session reset the count once already (P1)
    fx: list[Effect] = [
        Cancel(src.name, "upload"),
        Persist(),  # the job joins the saved record of judged jobs: a restart books it no more
        Count("refresh_verifications_total", (src.name, verdict)),
        _log(
            logging.INFO,  # one refresh's outcome; refreshes that keep failing warn once
            f"refresh verification: {verdict}",
            src,
            job_id=ver.job_id,
        ),
    ]
    # `unverified` is neither a success nor an unsuccessful refresh: the count stays as it is.
    if verdict not in ("superseded", "unverified"):
        fx.append(RecordOutcome(src.name, ver.job_id, ok))
        reason = v_reason if (v_reason := _verdict_reason(src, verdict)) else ver.reason
        fx.append(
            _notify(
                _VERDICT_EVENT[verdict],
                src,
                _job_key(ver.job_id, ver.created_at),
                f"refresh job {ver.job_id}: {_VERDICT_TEXT[verdict]}",
                reason,
                ver.job_id,
            )
        )
    return fx


def _verdict_reason(src: Source, verdict: Verdict) -> str | None:
    """`refresh_still_failing` names the new failure; the other verdicts the job's reason."""
    v = src.last_validation
    if verdict == "still_failing" and v is not None and v.reason is not None:
        return v.reason.value
    return None


def _job_key(job_id: str, created_at: float) -> str:
    """What names a job's events: its id alone repeats after a queue reset."""
    return f"{job_id}@{round(created_at * 1000)}" if created_at else job_id


_VERDICT_EVENT: dict[Verdict, NotifyEvent] = {
    "verified": "refresh_verified",
    "still_failing": "refresh_still_failing",
    "no_upload": "refresh_no_upload",
}
_VERDICT_TEXT = {
    "verified": "new cookies uploaded and validated",
    "still_failing": "new cookies uploaded, validation still fails",
    "no_upload": "refresh completed but no new login session arrived in time",
}


# --- refresh requests ---------------------------------------------------------------------------


def resolve_reason(reason_text: str, error: str | None) -> Reason:
    """What a trigger asks for, in the daemon's vocabulary.

    Without `error` it is a person asking, whatever the word (the original documentation says
    `manual_trigger` and `test`): `manual`. With `error` it is a report: the error text is the
    evidence, and the caller's reason names it only when the error can't.
    """
    if error is None:
        return Reason.MANUAL
    if error and (found := classify(error).reason) is not Reason.OTHER:
        return found
    try:
        return Reason(reason_text.strip().lower())
    except ValueError:
        return classify(reason_text).reason


def ambiguous(reason: Reason, text: str | None) -> bool:
    """May or may not be the cookies: a 403, a private or members-only video, an age gate."""
    if reason is Reason.FORBIDDEN:
        return True
    if reason is not Reason.AUTH_REQUIRED:
        return False
    norm = normalize(text or "")
    return any(w in norm for w in _AMBIGUOUS_WORDS)


def _refresh_asked(state: State, src: Source, ask: RefreshAsked, now: Now) -> list[Effect]:
    if not ask.reason.fixable:
        if not ask.force:
            return _answer(src, ask, "ignored", f"{ask.reason.value} is not fixed by fresh cookies")
        ask = replace(ask, reason=Reason.MANUAL)  # a person overrules the classification
    reason, fx = ask.reason, list[Effect]()
    person = ask.force or reason is Reason.MANUAL
    if not person and reason not in src.settings.trigger_on:
        return fx + _answer(src, ask, "ignored", f"{reason.value} is not in trigger_on")
    diag = src.diagnosis
    if not person and diag is not None and src.pending_job is None and reason not in FILE_PROBLEMS:
        if reason in _NOT_HONOURED:  # says the session is dead: newer evidence, check it
            fx += _validate(src, "report", diagnose=True)
            return fx + _answer(src, ask, "validating", "Validating the cookies before a refresh")
        why = f"diagnosed {diag.value}: fresh cookies cannot fix this, no refresh asked"
        return fx + _answer(src, ask, "ignored", why)
    # Ambiguous texts get a validation first, unless a refresh is coming anyway.
    doubt = ambiguous(reason, ask.error or ask.detail) and src.pending_job is None
    if not person and ask.origin != "cli" and doubt:
        fx += _validate(src, "report")
        return fx + _answer(src, ask, "validating", "Validating the cookies before a refresh")
    if src.pending_job is not None and state.redis_up:
        # A job is already on its way: that is the answer Redis would give, without asking it.
        fx += _counts(src, reason, ask.origin, "coalesced")
        message = _MESSAGES["coalesced"]
        return [*fx, Answer("coalesced", src.name, reason, message, src.pending_job)]
    if state.redis_up is False:
        fx += _owe(src, Owed(reason, now.wall, ask.origin, ask.force))
        return fx + _answer(
            src,
            ask,
            "deferred",
            "Redis is unavailable; the daemon owes this refresh and asks when Redis returns",
        )
    enqueue = Enqueue(src.name, reason, ask.origin, ask.force, ask.error, ask.video_id, ask.detail)
    return [*fx, enqueue]


def _counts(src: Source, reason: Reason, origin: Origin, state: TriggerState) -> list[Effect]:
    # `reason` is a StrEnum: it is its label value (`.value` is a slow descriptor on a hot path).
    labels = (src.name, reason, state)
    fx: list[Effect] = [Count("refresh_requests_total", labels)]
    if origin in _REPORTERS:  # what the backend fails on, including what triggers nothing
        fx.append(Count("failure_reports_total", labels))
    return fx


def _answer(src: Source, ask: RefreshAsked, state: TriggerState, message: str) -> list[Effect]:
    return [
        *_counts(src, ask.reason, ask.origin, state),
        Answer(state, src.name, ask.reason, message),
    ]


_MESSAGES: dict[TriggerState, str] = {
    "enqueued": "Cookie refresh job triggered successfully",  # the original documentation's words
    "coalesced": "A refresh job is already pending for this source",
    "cooldown": "A refresh finished recently; cooling down",
    "backoff": "Recent refreshes did not help; backing off",
}


def _refresh_answered(state: State, src: Source, ans: RefreshAnswered, now: Now) -> list[Effect]:
    fx = _counts(src, ans.reason, ans.origin, ans.state)
    src.requesting = False
    if ans.state == "deferred":  # Redis failed under the request
        state.redis_up = False
        fx += _owe(src, Owed(ans.reason, now.wall, ans.origin))
        message = "Redis is unavailable; the daemon owes this refresh and asks when Redis returns"
        return [*fx, Answer("deferred", src.name, ans.reason, message)]
    if ans.state in ("enqueued", "coalesced"):
        src.pending_job, src.retry_at = ans.job_id, None
        src.pending_reason = src.pending_reason if ans.state == "coalesced" else ans.reason
        if src.owed is not None:
            src.owed = None
            fx.append(Persist())
    message = _MESSAGES.get(ans.state, ans.state)
    braked = ans.force and src.backoff_ends(now.wall) is not None
    if ans.state == "enqueued":
        assert ans.job_id is not None
        src.pending_progress = PendingJob(now.wall)  # until the next poll reads it from Redis
        src.requested[ans.job_id] = now.wall
        _note_asked(src, ans.job_id, now)
        while len(src.requested) > REQUESTED_KEPT:
            del src.requested[next(iter(src.requested))]
        fx += [
            Count("refresh_jobs_enqueued_total", (src.name, ans.reason.value)),
            _log(
                logging.INFO,
                "refresh enqueued",
                src,
                reason=ans.reason.value,
                origin=ans.origin,
                job_id=ans.job_id,
                forced_past_backoff=braked or None,
            ),
            _notify(
                "refresh_enqueued",
                src,
                f"{ans.job_id}@{now.wall:.3f}",  # only the daemon that enqueued it says so
                f"refresh job {ans.job_id} enqueued ({ans.reason.value})",
                ans.reason.value,
                ans.job_id,
            ),
        ]
    if ans.state in ("cooldown", "backoff") and ans.retry_after is not None:
        # Refused for now: come back when the brake lets go, and look at the evidence again.
        src.retry_at = now.mono + ans.retry_after
        if ans.state == "backoff":  # another daemon's outcomes count too: mirror what Redis says
            src.failures, src.backoff_until = max(src.failures, 1), now.wall + ans.retry_after
        fx.append(Arm(src.name, "retry", src.retry_at))
    # The message stays the documented one; a forced job says so in `forced`.
    forced = ans.force and ans.state == "enqueued"
    answer = Answer(ans.state, src.name, ans.reason, message, ans.job_id, ans.retry_after, forced)
    return [*fx, answer]


# --- the queue ----------------------------------------------------------------------------------


def _queue_observed(state: State, obs: QueueObserved, now: Now) -> list[Effect]:
    fx: list[Effect] = []
    if state.redis_up is not True:
        fx.append(_redis_back(state, now))
    state.redis_up, state.counts = True, obs.counts
    if obs.diagnoses is not None:
        for name, src in state.sources.items():
            src.shared_diagnosis = obs.diagnoses.get(name)
    state.history_recovered = True
    initial = state.judged is None
    judged = state.judged if state.judged is not None else set()
    finished_ids = {j.job_id for j in obs.finished}
    booked = False
    for job in sorted(obs.finished, key=lambda j: j.finished_at):
        key = judged_key(job.job_id, job.finished_at)
        if key in judged:
            continue  # booked already: a job is judged by its id, never by a finishedOn cursor
        judged.add(key)
        booked = True
        if job.source in state.sources:
            fx += _job_finished(state.sources[job.source], job, now, counted=not initial)
    state.judged = judged if obs.window is None else judged & obs.window
    if booked:
        fx.append(Persist())  # the record survives a restart: jobs that end meanwhile are booked
    for name, src in state.sources.items():
        before = src.pending_job
        src.pending_job = obs.pending.get(name)
        if src.pending_job is not None and src.pending_job not in src.requested:
            src.watched.setdefault(src.pending_job, now.wall)
            _note_asked(src, src.pending_job, now)
            while len(src.watched) > REQUESTED_KEPT:
                del src.watched[next(iter(src.watched))]
        lost = src.pending_job is None and before in obs.vanished - finished_ids
        if before is not None and lost:
            fx += _job_lost(src, before)
        if src.pending_job is None:
            src.pending_reason = None
        src.pending_progress = obs.progress.get(name) if src.pending_job is not None else None
    for src in state.sources.values():
        if src.owed is not None:  # after an outage, or restored from the state file
            fx += _pay_owed(state, src, now)
        else:
            fx += _pursue(state, src, now, origin="retry")
    return fx


def _note_asked(src: Source, job_id: str, now: Now) -> None:
    src.asked_mono.setdefault(job_id, now.mono)
    while len(src.asked_mono) > REQUESTED_KEPT:
        del src.asked_mono[next(iter(src.asked_mono))]


def _job_lost(src: Source, job_id: str) -> list[Effect]:
    src.requested.pop(job_id, None)
    reason = src.pending_reason
    fx: list[Effect] = [
        Count("pending_jobs_lost_total", (src.name,)),
        _log(logging.WARNING, "pending refresh job vanished from Redis", src, job_id=job_id),
    ]
    if reason is Reason.MANUAL:
        # A person asked and nothing ran: that request still stands.
        fx.append(Enqueue(src.name, reason, "retry"))
    return fx


def _pay_owed(state: State, src: Source, now: Now) -> list[Effect]:
    owed = src.owed
    assert owed is not None
    if src.report is None and src.read_error is None:
        return []  # at start, before the file was looked at: its cause cannot be judged yet
    src.owed = None
    fx: list[Effect] = [Persist()]
    if not still_owed(src, owed, now):
        dropped = _log(
            logging.INFO, "owed refresh dropped: its cause is gone", src, reason=owed.reason
        )
        return [*fx, dropped]
    if src.pending_job is not None:
        return fx
    return [*fx, Enqueue(src.name, owed.reason, "owed", owed.force)]


def _job_finished(src: Source, job: FinishedJob, now: Now, *, counted: bool) -> list[Effect]:
    src.history.append(job)
    requested = src.requested.pop(job.job_id, None)
    watched = src.watched.pop(job.job_id, None)
    if not counted:
        return []  # history recovered at start: counters are about what this process saw
    ok = job.outcome == "completed"
    fx: list[Effect] = [
        Count("refresh_jobs_finished_total", (src.name, job.outcome)),
        _log(
            logging.INFO,  # one job's outcome; refreshes that keep failing warn once
            f"refresh job {job.outcome}",
            src,
            job_id=job.job_id,
            attempts=job.attempts_made,
        ),
        _notify(
            "refresh_completed" if ok else "refresh_failed",
            src,
            _job_key(job.job_id, job.created_at),
            f"refresh job {job.job_id} {job.outcome}",
            job.reason,
            job.job_id,
        ),
    ]
    if not ok:
        return [*fx, RecordOutcome(src.name, job.job_id, False)]
    if src.verifying is not None:
        fx += _end_verification(src, "superseded")
    since = requested if requested is not None else job.created_at
    # From when this daemon saw it end, not the worker's finishedOn: its clock may be off.
    ver = Verification(
        job.job_id,
        now.mono + src.settings.upload_timeout,
        reason=job.reason,
        created_at=job.created_at,
        key=judged_key(job.job_id, job.finished_at),
        asked_at=since if watched is None else watched,
        asked_mono=src.asked_mono.pop(job.job_id, None),
        ended_at=now.wall,
    )
    src.verifying = ver
    fx.append(Arm(src.name, "upload", ver.deadline))
    # The extractor uploads before it reports success: the new session may be here already.
    if _session_after(src, ver):
        ver.session_at = src.session_since
        fx += _validate(src, "verification")
    elif src.rewritten_at is not None and src.rewritten_at > ver.asked_at:
        # The jar was rewritten with the session already there while the job ran: the
        # extractor uploaded the same login (D14). The validation judges it, not `no_upload`.
        ver.session_at, ver.same_session = src.rewritten_at, True
        fx += _validate(src, "verification")
    return fx


def _redis_down(state: State, event: RedisDown, now: Now) -> list[Effect]:
    if state.redis_up is False:
        if state.redis_down is not None:
            state.redis_down.repeats += 1
        return []
    state.redis_up, state.counts = False, None
    state.redis_down = Spell(now.mono)
    return [
        Log(logging.WARNING, "redis unavailable", {"problem": "redis_down", "error": event.error})
    ]


def _redis_back(state: State, now: Now) -> Log:
    spell, state.redis_down = state.redis_down, None
    if spell is None:
        return Log(logging.INFO, "redis reachable", {})
    fields = {"problem": "redis_down", "lasted": round(now.mono - spell.since, 3)}
    return Log(logging.INFO, "redis unavailable: ended", {**fields, "repeats": spell.repeats})


# --- timers -------------------------------------------------------------------------------------


def _timer_fired(state: State, src: Source, key: TimerKey, now: Now) -> list[Effect]:
    if key == "grace":
        # Look again: the file decides, not the memory of it.
        fx: list[Effect] = [Inspect(src.name)]
        fx += _announce_problem(src, now)
        return fx
    if key == "upload":
        ver = src.verifying
        if ver is None or now.mono < ver.deadline:
            return []
        # An upload no validation could judge by the deadline is `unverified` (D3): a verdict
        # that blames nothing, so automatic refreshes are not blocked forever.
        verdict: Verdict = "no_upload" if ver.session_at is None else "unverified"
        return _end_verification(src, verdict) + _pursue(state, src, now, origin="retry")
    if key == "validate":
        return _validate(src, "schedule")
    if key == "retry":
        src.retry_at = None
        v, reason = src.last_validation, need(src, now)
        if reason is not None and v is not None and not v.offline and v.reason is reason:
            # The evidence is a validation from before the wait (up to a day): look again before
            # a login is spent on it; its result pursues the need.
            return _validate(src, "retry")
        return _pursue(state, src, now, origin="retry")
    # rotation
    fx = []
    plan = src.rotation()
    expiring = plan is not None and plan[0] <= now.wall and plan[1] is Reason.EXPIRING_SOON
    if expiring and "cookies_expiring" not in src.announced:
        src.announced.add("cookies_expiring")
        expiry = f"{src.report.login_expires_at if src.report else 0:.0f}"
        fx.append(
            _notify(
                "cookies_expiring",
                src,
                expiry,
                "login cookies expire soon",
                Reason.EXPIRING_SOON.value,
            )
        )
    return fx + _pursue(state, src, now, origin="rotation")


# --- small helpers ------------------------------------------------------------------------------


def _log(level: int, message: str, src: Source, **fields: Any) -> Log:
    clean = {k: (v.value if isinstance(v, Reason) else v) for k, v in fields.items()}
    return Log(level, message, {"source": src.name, **clean})


def _notify(
    event: NotifyEvent,
    src: Source,
    key: str,
    summary: str,
    reason: str | None = None,
    job_id: str | None = None,
) -> Notify:
    return Notify(event, src.name, key, f"{src.name}: {summary}", reason, job_id)


def unusable_reason(src: Source) -> str | None:
    """Why the cookies are not usable now, or None: the file exists and is logged in, and the
    last conclusive validation on this session passed or none ran yet. A validation that
    started before the current session arrived judged other cookies; an OS error reading the
    file is the daemon's trouble (the last real report stands); an IP block or a PO-token
    requirement is not the cookies' (inconclusive, so never a verdict)."""
    if src.report is None:
        return NOT_INSPECTED
    if src.problem is not None:  # missing, unparseable, logged out, expired, unreadable…
        return src.problem.value
    v, since = src.verdict, src.session_since
    if v is not None and not v.ok and (since is None or v.started_at >= since):
        return (v.reason or Reason.OTHER).value
    return None


def track_usable(src: Source, now: Now | float) -> None:
    """Keep `src.usable` and the time its answer last changed: the health gate reads only this."""
    now = as_now(now)
    reason = unusable_reason(src)
    if src.usable is None or src.usable.reason != reason:
        src.usable = Usable(reason, now.wall)


def worst_usable(sources: dict[str, Source]) -> tuple[str, Usable]:
    """The source that decides for all: the worst unusable one (strongest reason, then the
    longest unusable), else the usable one that became so last (all have been since then)."""

    def badness(item: tuple[str, Usable]) -> tuple[int, float]:
        u = item[1]
        since = u.since or 0.0
        return (u.rank, since if u.ok else -since)

    seen = [(name, src.usable or Usable(NOT_INSPECTED, None)) for name, src in sources.items()]
    return max(seen, key=badness)


def health(state: State, now: Now | float) -> str:
    """Cookie health for systemd's STATUS=, e.g. "2 sources: main ok, alt refresh pending"."""
    now = as_now(now)
    parts = [f"{name} {_health_word(src, now)}" for name, src in state.sources.items()]
    head = f"{len(parts)} source{'s' if len(parts) != 1 else ''}: "
    redis = "redis down; " if state.redis_up is False else ""
    return redis + head + ", ".join(parts)


def _health_word(src: Source, now: Now) -> str:
    v = src.last_validation
    if src.read_error is not None:
        return f"unreadable by the daemon ({src.read_error})"
    if src.pending_job is not None:
        return "refresh pending"
    if src.owed is not None:
        return "refresh owed"
    if src.verifying is not None:
        return "verifying refresh"
    if src.problem is not None:
        return src.problem.value.replace("_", " ")
    if src.diagnosis is not None:
        return src.diagnosis.value.replace("_", " ")
    if src.backoff_ends(now.wall) is not None:
        return "backing off"
    if v is not None and not v.ok:
        return f"failing ({(v.reason or Reason.OTHER).value})"
    return "ok"


# --- standing problems in the log ---------------------------------------------------------------
#
# `journalctl -p warning` must show every problem that stands, once: one WARNING line when it
# starts, one INFO line when it ends (with how long it lasted and how often it was seen again
# meanwhile); repeats are counted, not logged. Redis outages are logged where they are seen
# (_redis_down, _redis_back); the file's, the validation's and the refreshes' problems are found
# here, after every step, from the state the step left.

# Refreshes in a row that did not help before "refreshes do not fix the cookies" is a problem:
# the rules' default cookie_supervisor:threshold_refresh_consecutive_failures.
INEFFECTIVE_AFTER = 2
_PROBLEM_TEXT = {
    Reason.MISSING_COOKIES: "cookie file missing",
    Reason.CORRUPT_COOKIES: "cookie file unusable",
    Reason.LOGGED_OUT: "cookies logged out",
    Reason.EXPIRED: "login cookies expired",
    Reason.UNREADABLE: "cookie file unreadable",
    Reason.NOT_A_FILE: "cookie path is not a regular file",
    "validation_failing": "validation failing",
    "refresh_ineffective": "refreshes do not fix the cookies",
    # The daemon's own trouble (descriptors, memory, I/O), logged at ERROR in _read_error.
    "read_error": "cannot read cookie file (daemon resource problem)",
}
# What sees a standing problem again: that sighting is a repeat.
_SIGHTINGS: dict[type, frozenset[str]] = {
    FileInspected: frozenset(r.value for r in FILE_PROBLEMS),
    ValidationFinished: frozenset({"validation_failing"}),
    BackoffObserved: frozenset({"refresh_ineffective"}),
}


def standing(src: Source, now: Now | float) -> dict[str, dict[str, Any]]:
    """The source's problems that stand now, each with the fields its WARNING line carries."""
    now = as_now(now)
    found: dict[str, dict[str, Any]] = {}
    if (problem := _file_evidence(src, now)) is not None:
        found[problem.value] = {"path": str(src.settings.cookies_file)}
    v = src.last_validation
    if v is not None and not v.ok and v.reason not in FILE_PROBLEMS:
        # (a failing offline check of a missing or logged-out jar is that problem's line)
        reason = (v.reason or Reason.OTHER).value
        found["validation_failing"] = {"reason": reason, "detail": v.message}
    if src.failures >= INEFFECTIVE_AFTER:
        found["refresh_ineffective"] = {"failures": src.failures}
    return found


def _problem_lines(state: State, event: Event, now: Now) -> list[Effect]:
    name = getattr(event, "source", None)
    if name is not None:
        return _source_problem_lines(state.sources[name], event, now)
    fx: list[Effect] = []
    for src in state.sources.values():  # the queue's and Redis's events concern every source
        fx += _source_problem_lines(src, event, now)
    return fx


def _source_problem_lines(src: Source, event: Event, now: Now) -> list[Effect]:
    if src.read_error is not None:
        return []  # the daemon cannot look: nothing starts or ends until it can again
    now_standing = standing(src, now)
    if not now_standing and not src.warned:
        return []
    fx: list[Effect] = []
    for key in [k for k in src.warned if k not in now_standing]:
        spell = src.warned.pop(key)
        fx.append(
            _log(
                logging.INFO,
                f"{_problem_text(key)}: ended",
                src,
                problem=key,
                lasted=round(now.mono - spell.since, 3),
                repeats=spell.repeats,
            )
        )
    sighted = _SIGHTINGS.get(type(event), frozenset())
    for key, fields in now_standing.items():
        if (seen := src.warned.get(key)) is not None:
            seen.repeats += key in sighted
            continue
        src.warned[key] = Spell(now.mono)
        fx.append(_log(logging.WARNING, _problem_text(key), src, problem=key, **fields))
    return fx


def _problem_text(key: str) -> str:
    return _PROBLEM_TEXT.get(key, key.replace("_", " "))


def _validation_level(src: Source, v: Validation) -> int:
    """A pass is INFO; a failure INFO the first time (its problem's WARNING follows) and DEBUG
    while its problem stands (a repeat: counted, not logged)."""
    if v.ok:
        return logging.INFO
    reason = (v.reason or Reason.OTHER).value
    key = reason if v.reason in FILE_PROBLEMS else "validation_failing"
    return logging.DEBUG if key in src.warned else logging.INFO
