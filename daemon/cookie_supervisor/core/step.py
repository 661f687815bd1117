"""The dispatcher: `step(state, event, now) -> effects`, the one entry of the core.

`step` hands the event to the sub-machine it concerns, then pursues the refresh need once (see
below), then adds the standing-problem log lines (problems.py) the new state calls for. The
sub-machines, each a module:

- the file (file.py, `FileInspected`): the jar's problems and their grace, login sessions, how
  long they live, the rotation timer;
- validation (validation.py, `ValidationFinished`): the verdict, the verification of a refresh,
  the diagnosis that fresh cookies cannot help, the backoff a passing validation resets;
- refresh (refresh.py, `RefreshAsked`, `RefreshAnswered`, `BackoffObserved`): what the evidence
  calls for (`need`), asking for it (`pursue`), answers, refreshes owed while Redis is away;
- jobs (jobs.py, `QueueObserved`, `RedisDown`): finished jobs booked once, lost jobs, owed
  refreshes paid;
- timers (here, `TimerFired`): each timer wakes the sub-machine that armed it.

How they couple, all through the `Source` (source.py), never by calling each other's handlers:
after the sub-machine, `step` asks refresh to `pursue` the need once (the one place a refresh is
asked for), with the origin the event implies (`_pursued`), and refresh reads the file's and
validation's evidence (`file_evidence`, `rotation_evidence`, `last_validation`) to decide it. A
new session or a write during a job makes the file ask for a validation; a job booked as
completed opens a `Verification` (jobs) that a validation judges (validation), which books the
outcome for the backoff (`RecordOutcome`); a validation saying the session is dead ends it in the
file's lifetimes (`session_ended`).
"""

from __future__ import annotations

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import (
    BackoffObserved,
    Effect,
    Event,
    FileInspected,
    Inspect,
    QueueObserved,
    RedisDown,
    RefreshAnswered,
    RefreshAsked,
    TimerFired,
    ValidationFinished,
)
from cookie_supervisor.core.file import announce_problem, file_inspected
from cookie_supervisor.core.jobs import queue_observed, redis_went_down
from cookie_supervisor.core.problems import problem_lines
from cookie_supervisor.core.refresh import (
    backoff_observed,
    need,
    pursue,
    refresh_answered,
    refresh_asked,
)
from cookie_supervisor.core.source import Source, State, notification, validate
from cookie_supervisor.core.validation import end_verification, overtaken, validation_finished
from cookie_supervisor.model import (
    Now,
    Origin,
    TimerKey,
    Verdict,
    as_now,
)

# --- the step -----------------------------------------------------------------------------------


def step(state: State, event: Event, now: Now | float) -> list[Effect]:
    """Apply `event` to `state` at time `now`; return what the runtime should do.

    A plain number is both clocks (tables, and worlds without clock steps)."""
    now = as_now(now)
    pursued = _pursued(state, event, now)  # on the state the event found
    fx = _step(state, event, now)
    for src, origin in pursued:
        fx += pursue(state, src, now, origin=origin)
    return fx + problem_lines(state, event, now)


# The timers that pursue the need once they have run, and the origin they imply.
_TIMER_ORIGINS: dict[TimerKey, Origin] = {
    "upload": "retry",
    "retry": "retry",
    "rotation": "rotation",
}


def _pursued(state: State, event: Event, now: Now) -> list[tuple[Source, Origin]]:
    """Whose refresh need `event` pursues once its sub-machine has run, and the origin it
    implies: the event's source, or each source for a poll. Asks, answers, backoffs and Redis
    going away pursue nothing; nor do the grace and validate timers (the file or the validation
    they call for pursues it)."""
    match event:
        case FileInspected():
            return [(state.sources[event.source], "file")]
        case ValidationFinished() if event.validation.read_error is None:
            # a probe the daemon's own trouble stopped is no verdict: nothing new to pursue
            return [(state.sources[event.source], "validation")]
        case QueueObserved():
            # a refresh owed is paid by the poll instead (jobs: after an outage, or restored)
            return [(src, "retry") for src in state.sources.values() if src.owed is None]
        case TimerFired() if (origin := _TIMER_ORIGINS.get(event.key)) is not None:
            src = state.sources[event.source]
            if event.key == "upload" and not _upload_due(src, now):
                return []  # the verification it was armed for has ended, or is not due
            return [(src, origin)]
    return []


def _step(state: State, event: Event, now: Now) -> list[Effect]:
    match event:
        case FileInspected():
            src = state.sources[event.source]
            # the file's problem may end the verification (N11)
            return file_inspected(state, src, event.report, now) + overtaken(src, now)
        case ValidationFinished():
            return validation_finished(state, state.sources[event.source], event.validation, now)
        case QueueObserved():
            return queue_observed(state, event, now)
        case RedisDown():
            return redis_went_down(state, event, now)
        case TimerFired():
            return timer_fired(state, state.sources[event.source], event.key, now)
        case RefreshAsked():
            return refresh_asked(state, state.sources[event.source], event, now)
        case RefreshAnswered():
            return refresh_answered(state, state.sources[event.source], event, now)
        case BackoffObserved():
            src = state.sources[event.source]
            return backoff_observed(src, event.failures, event.until, now)
    raise TypeError(f"not an event: {event!r}")


# --- timers -------------------------------------------------------------------------------------


def timer_fired(state: State, src: Source, key: TimerKey, now: Now) -> list[Effect]:
    if key == "grace":
        # Look again: the file decides, not the memory of it.
        fx: list[Effect] = [Inspect(src.name)]
        fx += announce_problem(src, now)
        return fx
    if key == "upload":
        ver = src.verifying
        if ver is None or not _upload_due(src, now):
            return []
        # An upload no validation could judge by the deadline is `unverified` (D3): a verdict
        # that blames nothing, so automatic refreshes are not blocked forever.
        verdict: Verdict = "no_upload" if ver.session_at is None else "unverified"
        return end_verification(src, verdict, deadline=True)
    if key == "validate":
        return validate(src, "schedule")
    if key == "retry":
        src.retry_at = None
        v, reason = src.last_validation, need(src, now)
        if reason is not None and v is not None and not v.offline and v.reason is reason:
            # The evidence is a validation from before the wait (up to a day): look again before
            # a login is spent on it; its result pursues the need (validating, step's is none).
            return validate(src, "retry")
        return []
    # rotation
    fx = []
    plan = src.rotation()
    expiring = plan is not None and plan[0] <= now.wall and plan[1] is Reason.EXPIRING_SOON
    if expiring and "cookies_expiring" not in src.announced:
        src.announced.add("cookies_expiring")
        expiry = f"{src.report.login_expires_at if src.report else 0:.0f}"
        fx.append(
            notification(
                "cookies_expiring",
                src,
                expiry,
                "login cookies expire soon",
                Reason.EXPIRING_SOON.value,
            )
        )
    return fx


def _upload_due(src: Source, now: Now) -> bool:
    """The open verification's deadline has come."""
    ver = src.verifying
    return not (ver is None or now.mono < ver.deadline)
