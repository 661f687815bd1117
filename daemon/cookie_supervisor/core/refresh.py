"""Refresh requests: what the evidence calls for (`need`), asking for it (`pursue`, the one
place a refresh is asked for), a person's or a report's request, Redis's answer, and refreshes
owed while Redis is away (`still_owed` looks at their evidence again)."""

from __future__ import annotations

import logging
from dataclasses import replace

from cookie_supervisor.classify import Reason, classify, normalize, strongest
from cookie_supervisor.core.events import (
    Answer,
    Arm,
    Count,
    Effect,
    Enqueue,
    Persist,
    RefreshAnswered,
    RefreshAsked,
)
from cookie_supervisor.core.source import (
    FILE_PROBLEMS,
    PEOPLE,
    REPORTERS,
    REQUESTED_KEPT,
    ROTATIONS,
    Riding,
    Source,
    State,
    diagnosis_fresh,
    file_evidence,
    log_line,
    notification,
    rotation_evidence,
    validate,
)
from cookie_supervisor.model import (
    Now,
    Origin,
    Owed,
    PendingJob,
    TriggerState,
    as_now,
)
from cookie_supervisor.verdict import NOT_HONOURED

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
        file_evidence(src, now),
        # A failed validation stands until one passes; the file's own problems speak for
        # themselves.
        # (An offline run's reason is the file's problem, which speaks for itself with its
        # grace; an account check saying logged_out is not the file's and counts here.)
        v.reason if v is not None and not v.offline and not diagnosed else None,
        None if diagnosed else rotation_evidence(src, now),
    ]
    # trigger_on filters each piece of evidence, before the strongest is chosen: a reason the
    # source does not act on must not hide one it does.
    found: Reason | None = None
    for reason in candidates:
        if reason is not None and reason.fixable and reason in src.settings.trigger_on:
            found = strongest(found, reason)
    return found


def pursue(state: State, src: Source, now: Now, *, origin: Origin) -> list[Effect]:
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
    if reason in ROTATIONS:
        origin = "rotation"  # whatever woke us, the calendar asked
    return [Enqueue(src.name, reason, origin)]


def by_person(owed: Owed) -> bool:
    return owed.force or owed.origin in PEOPLE or owed.reason is Reason.MANUAL


def _owe(src: Source, owed: Owed, *, quiet: bool = False) -> list[Effect]:
    """Keep the strongest refresh owed — but a person's request is never merged into an automatic
    one (that would drop it with the automatic one's cause): it is paid as theirs (P4)."""
    before = src.owed
    if before is not None and by_person(before) and not by_person(owed):
        return []
    if before is not None and by_person(owed) and not by_person(before):
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
        # INFO: the outage itself is the one WARNING line (see redis_went_down)
        fx.append(
            log_line(logging.INFO, "redis unavailable; refresh owed", src, reason=owed.reason)
        )
    return fx


def still_owed(src: Source, owed: Owed, now: Now | float) -> bool:
    """Is an owed refresh still called for? A person's request is; evidence is looked at again."""
    now = as_now(now)
    if owed.force or owed.origin in PEOPLE or owed.reason is Reason.MANUAL:
        return True
    if owed.reason in FILE_PROBLEMS:
        return file_evidence(src, now) == owed.reason
    if owed.reason in ROTATIONS:
        return rotation_evidence(src, now) is not None
    # An offline look at the jar says nothing about what the backend reported (D4).
    v = src.last_validation
    return not (v is not None and v.ok and not v.offline and v.at >= owed.at)


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


def refresh_asked(state: State, src: Source, ask: RefreshAsked, now: Now) -> list[Effect]:
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
        if reason in NOT_HONOURED or not diagnosis_fresh(src, now):
            # Says the session is dead (newer evidence), or this run has not confirmed the
            # diagnosis for a while (a source validating only on demand keeps it for a day,
            # one restored or shared was never confirmed here): check it first (N9).
            fx += validate(src, "report", diagnose=True)
            return fx + _answer(src, ask, "validating", "Validating the cookies before a refresh")
        why = f"diagnosed {diag.value}: fresh cookies cannot fix this, no refresh asked"
        return fx + _answer(src, ask, "ignored", why)
    # Ambiguous texts get a validation first, unless a refresh is coming anyway.
    doubt = ambiguous(reason, ask.error or ask.detail) and src.pending_job is None
    if not person and ask.origin != "cli" and doubt:
        fx += validate(src, "report")
        return fx + _answer(src, ask, "validating", "Validating the cookies before a refresh")
    if src.pending_job is not None and state.redis_up:
        # A job is already on its way: that is the answer Redis would give, without asking it.
        fx += _counts(src, reason, ask.origin, "coalesced")
        if person and src.riding is None:  # until a poll read after it finds the job pending
            src.riding = Riding(
                src.pending_job, Owed(reason, now.wall, ask.origin, ask.force), now.mono
            )
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
    if origin in REPORTERS:  # what the backend fails on, including what triggers nothing
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


def refresh_answered(state: State, src: Source, ans: RefreshAnswered, now: Now) -> list[Effect]:
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
        # A new job: what an id named before (a job of an earlier epoch: ids start again after
        # a FLUSHALL) is forgotten, or its old ask dates this upload (N31).
        src.requested.pop(ans.job_id, None)
        src.requested[ans.job_id] = now.wall
        src.asked_mono.pop(ans.job_id, None)
        note_asked(src, ans.job_id, now)
        while len(src.requested) > REQUESTED_KEPT:
            del src.requested[next(iter(src.requested))]
        fx += [
            Count("refresh_jobs_enqueued_total", (src.name, ans.reason.value)),
            log_line(
                logging.INFO,
                "refresh enqueued",
                src,
                reason=ans.reason.value,
                origin=ans.origin,
                job_id=ans.job_id,
                forced_past_backoff=braked or None,
            ),
            notification(
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


def backoff_observed(src: Source, failures: int, until: float | None, now: Now) -> list[Effect]:
    """What Redis holds of the shared backoff (read after booking an outcome, or at start). When
    it ends earlier than the backoff this daemon's retry waits for (a peer's pass reset the
    count, and it grew again from one), the retry comes back when Redis's ends: it held a needed
    refresh up to a day past it (N24). Redis answers the cooldown, if one is left."""
    believed, src.failures, src.backoff_until = src.backoff_until, failures, until
    retry = src.retry_at
    if retry is None or believed is None or believed <= now.wall:
        return []
    ends_wall = until if until is not None else now.wall
    if ends_wall >= believed:
        return []
    ends = now.mono + max(0.0, ends_wall - now.wall)
    if ends >= retry:
        return []
    src.retry_at = ends
    return [Arm(src.name, "retry", ends)]


def note_asked(src: Source, job_id: str, now: Now) -> None:
    src.asked_mono.setdefault(job_id, now.mono)
    while len(src.asked_mono) > REQUESTED_KEPT:
        del src.asked_mono[next(iter(src.asked_mono))]
