"""The dispatcher: `step(state, event, now) -> effects`."""

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
from cookie_supervisor.core.file import _announce_problem, _file_inspected
from cookie_supervisor.core.jobs import _queue_observed, _redis_down
from cookie_supervisor.core.problems import _problem_lines
from cookie_supervisor.core.refresh import _pursue, _refresh_answered, _refresh_asked, need
from cookie_supervisor.core.source import Source, State, _notify, _validate
from cookie_supervisor.core.validation import _end_verification, _validation_finished
from cookie_supervisor.model import (
    Now,
    TimerKey,
    Verdict,
    as_now,
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
