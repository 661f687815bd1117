"""A source as the core keeps it (`Source`, `State`, a refresh being verified, a standing
problem), the evidence every sub-machine reads from it (`file_evidence`, `rotation_evidence`, the
learned renewal) and the small builders of effects they share (`log_line`, `notification`,
`validate`)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import Effect, Log, Notify, RunValidation
from cookie_supervisor.model import (
    CookieReport,
    FinishedJob,
    Lifetime,
    NotifyEvent,
    Now,
    Owed,
    PendingJob,
    Policy,
    Usable,
    Validation,
    as_now,
)

# --- vocabulary ---------------------------------------------------------------------------------

# The file's own state while an upload may still be writing it: not a verdict on a refresh.
FILE_STATES = frozenset(
    {Reason.MISSING_COOKIES, Reason.CORRUPT_COOKIES, Reason.UNREADABLE, Reason.NOT_A_FILE}
)
HISTORY = 20  # finished jobs kept per source for the success ratio
LEARN_FROM = 3  # the latest lifetimes the learned renewal and the lifetime median look at
LEARN_WINDOW = 7 * 86400.0  # ... among deaths this recent, when rotation is off (else rotate_after)
LEARNED_SHARE = 2 / 3  # renew at this share of their median (cert-manager renews at 2/3)
REQUESTED_KEPT = 16  # jobs we enqueued and still wait to see finish
# The extractor writes the jar, then reports success; a write seen this soon after the daemon saw
# the job end (the watcher's debounce and an inspection behind a poll) is the job's upload (N8).
UPLOAD_SEEN_LAG = 5.0
# A diagnosis this run confirmed within this long answers a report itself; an older one (or one
# restored or shared) is re-checked by a validation first, at most once per this long (N9).
DIAGNOSIS_RECHECK = 600.0
# A peer's shared diagnosis that vanished with Redis's data (the epoch changed) is held this long:
# the daemon that found it shares it again at its next poll (N3).
SHARED_HOLD = 60.0
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
# People asking: the evidence is their word, so it is neither filtered nor re-checked.
PEOPLE = frozenset({"cli"})
REPORTERS = frozenset({"api", "report"})
ROTATIONS = frozenset({Reason.SCHEDULED_ROTATION, Reason.EXPIRING_SOON})


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
    ended_mono: float | None = None  # the same moment as ended_at on the monotonic clock


@dataclass(frozen=True, slots=True)
class Riding:
    """A person's request answered `coalesced` onto a pending job this daemon knew of only from
    its last poll: the job may have ended since, and then nothing runs for them (N23)."""

    job_id: str
    owed: Owed  # the request as they made it, asked again if the job turns out to have ended
    asked_mono: float


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
    problem_mono: float | None = None  # the same moment on the monotonic clock (this run's)
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
    riding: Riding | None = None  # the first person's request coalesced since the last poll
    requested: dict[str, float] = field(default_factory=dict)  # job id → when we enqueued it
    # a peer's job id → when this daemon first saw it pending (wall, on our clock: the job's
    # creation time is the enqueuing host's clock)
    watched: dict[str, float] = field(default_factory=dict)
    # Orders this run's observations on the monotonic clock, which no clock step moves (N5):
    # job id → when asked or first seen pending; session → when first seen.
    asked_mono: dict[str, float] = field(default_factory=dict)
    arrived_mono: dict[str, float] = field(default_factory=dict)
    last_validation: Validation | None = None
    # mono: when this run last saw the jar switch to another login session, new or seen before
    # (the backend writing an old jar back): a validation begun earlier judged other cookies.
    switched_mono: float | None = None
    validated_ok_at: float | None = None
    # Why fresh cookies cannot help (ip_flagged, po_token_required, account_restricted), found by
    # this daemon: it stands until something newer contradicts it (P1), not until the next run.
    diagnosed: Reason | None = None
    shared_diagnosis: Reason | None = None  # what another daemon found, as Redis holds it
    # mono: when this run's cookie-less probe last confirmed the diagnosis (never persisted: a
    # diagnosis restored or shared is re-checked by the next report, N9)
    diagnosis_checked: float | None = None
    # mono: when this daemon confirms the diagnosis it holds again, before the copy it shared
    # expires in Redis (N32); None: at the next poll (a diagnosis restored at start)
    share_due: float | None = None
    reset_by: str | None = None  # the session whose passing validation last reset the backoff
    # The job whose upload nothing could judge by its deadline, excused as the first since the
    # source last worked (a pass online): the next one nobody can judge counts (N30).
    excused: str | None = None
    rewritten_at: float | None = None  # wall time the daemon last saw the logged-in jar change
    rewritten_mono: float | None = None  # the same moment on this run's monotonic clock
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
    epoch: str | None = None  # the queue's epoch at the last poll (not persisted)
    emptied_at: float | None = None  # mono: when this run last saw Redis lose its data

    @classmethod
    def of(cls, policies: list[Policy]) -> State:
        return cls({p.name: Source(p) for p in policies})

    @property
    def default_source(self) -> str:
        return next(iter(self.sources))


def arrival_after(src: Source, ver: Verification) -> float | None:
    """When the jar's session was first seen (wall), if that was after the job was asked: on the
    monotonic clock when this run saw both, else on the wall clock. While the jar shows no
    session (a restart found it missing or corrupt), the newest session remembered stands for
    it: what was in the jar last (the job's upload, when a run before the restart saw it)."""
    fp = src.session
    if fp is None and src.sessions:
        fp = max(src.sessions, key=src.sessions.__getitem__)
    if fp is None or (first_seen := src.sessions.get(fp)) is None:
        return None
    if ver.asked_mono is not None and (mono := src.arrived_mono.get(fp)) is not None:
        return first_seen if mono > ver.asked_mono else None
    return first_seen if first_seen > ver.asked_at else None


def rewritten_since_asked(src: Source, ver: Verification) -> bool:
    """Did this daemon see the jar written after the job was asked? On the monotonic clock when
    this run saw both (N19: a wall clock stepped back an hour during the job hid the
    extractor's rewrite of the same session, booked `no_upload`), else on the wall dates."""
    if ver.asked_mono is not None and src.rewritten_mono is not None:
        return src.rewritten_mono > ver.asked_mono
    return src.rewritten_at is not None and src.rewritten_at > ver.asked_at


def replaced_since_asked(src: Source, ver: Verification) -> bool:
    """Did the file's current problem begin after the job was asked (N11)? Then the jar changed
    since the ask: whatever the job uploaded was replaced or removed, and nothing can judge it.
    A problem that stood since before the ask (the job was asked for it) is the job's to end:
    an upload clears it, none is `no_upload`. On the monotonic clock when this run saw both."""
    if ver.asked_mono is not None and src.problem_mono is not None:
        return src.problem_mono > ver.asked_mono
    return src.problem_since is not None and src.problem_since > ver.asked_at


def file_evidence(src: Source, now: Now) -> Reason | None:
    """The offline problem once it has outlasted its grace period."""
    if src.problem is None or src.problem_confirm_at is None or now.mono < src.problem_confirm_at:
        return None
    return src.problem


def rotation_evidence(src: Source, now: Now) -> Reason | None:
    plan = src.rotation()
    return plan[1] if plan is not None and plan[0] <= now.wall else None


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


# --- validation ---------------------------------------------------------------------------------


def diagnosis_fresh(src: Source, now: Now | float) -> bool:
    """Did this run confirm the standing diagnosis within `DIAGNOSIS_RECHECK`? Then a report
    is answered by it; else the report gets a validation that confirms or drops it (N9)."""
    checked = src.diagnosis_checked
    return checked is not None and as_now(now).mono - checked < DIAGNOSIS_RECHECK


def validate(src: Source, trigger: str, *, diagnose: bool = False) -> list[Effect]:
    if src.validating:
        return []  # one in flight per source; its result serves this request too
    src.validating = True
    # A standing diagnosis is confirmed or dropped by every run: the cookie-less probe too.
    return [RunValidation(src.name, trigger, diagnose or src.diagnosis is not None)]


def awaiting_verification(src: Source) -> bool:
    return src.verifying is not None and src.verifying.session_at is not None


# --- small helpers ------------------------------------------------------------------------------


def log_line(level: int, message: str, src: Source, **fields: Any) -> Log:
    clean = {k: (v.value if isinstance(v, Reason) else v) for k, v in fields.items()}
    return Log(level, message, {"source": src.name, **clean})


def notification(
    event: NotifyEvent,
    src: Source,
    key: str,
    summary: str,
    reason: str | None = None,
    job_id: str | None = None,
) -> Notify:
    return Notify(event, src.name, key, f"{src.name}: {summary}", reason, job_id)
