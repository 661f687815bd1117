"""The cookie file: its inspections, its problems and their grace, login sessions and how long
they live (the learned renewal's samples), and the rotation that replaces a jar ahead of
trouble."""

from __future__ import annotations

import logging
from typing import Any

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import Arm, Cancel, Count, Effect, Observe, Persist
from cookie_supervisor.core.health import track_usable
from cookie_supervisor.core.problems import PROBLEM_TEXT
from cookie_supervisor.core.source import (
    UPLOAD_SEEN_LAG,
    Source,
    Spell,
    State,
    arrival_after,
    awaiting_verification,
    file_evidence,
    learned_renewal,
    log_line,
    notification,
    validate,
)
from cookie_supervisor.model import (
    LIFETIMES_KEPT,
    SESSIONS_KEPT,
    CookieReport,
    Lifetime,
    NotifyEvent,
    Now,
    Policy,
)

# --- the cookie file ----------------------------------------------------------------------------


def file_inspected(state: State, src: Source, report: CookieReport, now: Now) -> list[Effect]:
    if report.os_error is not None:
        # The daemon could not read the file (descriptors, memory, I/O): its own trouble.
        return _read_error(src, report.os_error, now)
    fx: list[Effect] = []
    src.read_error = None  # readable again: the INFO line ends the spell after this step
    previous, src.report = src.report, report
    changed = previous is not None and _signature(previous) != _signature(report)
    before = src.session
    new_session = _track_session(src, report, now, fx)
    switched = report.fingerprint is not None and before not in (None, report.fingerprint)
    if switched:
        src.switched_mono = now.mono
    _track_problem(src, previous, report, now, fx)
    logged_in = report.logged_in_at(now.wall)  # on the core's clock, not the inspection's
    if logged_in:
        src.last_good = report
    if (dead := file_evidence(src, now)) in _SESSION_ENDS:
        fx += session_ended(src, src.problem_since or now.wall, dead)
    if changed:
        fx.append(Count("file_changes_total", (src.name,)))
        fx.append(
            log_line(
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
        # a write, whatever it holds: perhaps a refresh's upload
        src.rewritten_at, src.rewritten_mono = now.wall, now.mono
    if new_session and src.verifying is not None:
        # The latest session is the refresh's, also after a rewrite of the old one (D14).
        src.verifying.session_at, src.verifying.same_session = now.wall, False
    elif (arrived := _arrived_during_job(src)) is not None:
        # A job booked again after a restart: the session it uploaded was seen before (D6).
        assert src.verifying is not None
        src.verifying.session_at = arrived
        fx += validate(src, "verification")
    elif (changed or previous is None) and _written_by_job(src, report, now):
        # The extractor wrote the jar, then reported; the watcher saw the write late, or the
        # daemon was down when it happened (D14): this run's clock or the mtime places it in
        # the job.
        assert src.verifying is not None
        src.verifying.session_at, src.verifying.same_session = now.wall, True
        fx += validate(src, "verification")
    if logged_in and (new_session or (changed and awaiting_verification(src))):
        # A rewrite of the same session by the backend's yt-dlp is not new evidence, and
        # validating each one would hammer YouTube.
        fx += validate(src, "verification" if src.verifying else "file")
    elif logged_in and switched and _failed_online(src):
        # Back to a session seen before (the backend wrote an old jar back): the failure stood
        # for other cookies; look at these before a login is spent on it (P5).
        fx += validate(src, "file")
    fx += _arm_rotation(src, now)
    track_usable(src, now)
    return fx


def _failed_online(src: Source) -> bool:
    v = src.last_validation
    return v is not None and not v.ok and not v.offline


def _arrived_during_job(src: Source) -> float | None:
    ver = src.verifying
    if ver is None or ver.session_at is not None:
        return None
    return arrival_after(src, ver)


def _written_by_job(src: Source, report: CookieReport, now: Now) -> bool:
    """A write the daemon sees after the job ended, made while the job ran: the job's upload of
    the session already there, not the backend's yt-dlp saving it later. Seen within
    `UPLOAD_SEEN_LAG` of the end on this run's monotonic clock, or else placed in the job by the
    jar's mtime, which is the writing host's clock: alone it cannot tell when that host's clock
    is off from this one's (N8: an hour ahead, the job's rewrite looked later than its end)."""
    ver = src.verifying
    if ver is None or ver.session_at is not None or not report.valid:
        return False  # not a cookie file (a captive-portal page): no upload of a jar (N11)
    if ver.ended_mono is not None and now.mono - ver.ended_mono <= UPLOAD_SEEN_LAG:
        return True
    return report.mtime is not None and ver.asked_at < report.mtime <= ver.ended_at


def _read_error(src: Source, errno: str, now: Now) -> list[Effect]:
    fx: list[Effect] = [Count("file_read_errors_total", (src.name, errno))]
    if (spell := src.warned.get("read_error")) is not None:
        spell.repeats += 1  # one ERROR line per spell, whichever errno comes next
    else:
        src.warned["read_error"] = Spell(now.mono)
        fx.append(
            log_line(
                logging.ERROR,
                PROBLEM_TEXT["read_error"],
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
    fx.append(log_line(logging.INFO, "new login session", src))
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
        src.problem_since = src.problem_mono = src.problem_confirm_at = None
        src.announced.difference_update(event for event, _ in _PROBLEM_EVENTS.values())
        fx.append(Cancel(src.name, "grace"))
        return
    src.problem_since, src.problem_mono = now.wall, now.mono
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
        fx += announce_problem(src, now)


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


def announce_problem(src: Source, now: Now) -> list[Effect]:
    """The event of the file's problem, once per spell of it."""
    found = _PROBLEM_EVENTS.get(src.problem) if src.problem is not None else None
    if found is None or found[0] in src.announced:
        return []
    event, summary = found
    src.announced.add(event)
    key = src.problem_key or f"{src.problem_since or now.wall:.0f}"
    assert src.problem is not None
    return [notification(event, src, key, summary, src.problem.value)]


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
        log_line(
            logging.INFO, "login session ended", src, why=why, lifetime_seconds=round(lifetime)
        ),
    ]
    if learned is not None and learned < since + src.settings.rotate_after:
        return fx  # lived under the learned renewal: a truncated sample
    src.lifetimes[fp] = Lifetime(lifetime, at)
    while len(src.lifetimes) > LIFETIMES_KEPT:
        del src.lifetimes[next(iter(src.lifetimes))]
    return [*fx, Persist()]
