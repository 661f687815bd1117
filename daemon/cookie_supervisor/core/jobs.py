"""The queue observed: finished jobs booked once (by id and end, never by a cursor), pending
jobs that vanished, owed refreshes paid once Redis answers, Redis going away and coming back."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import (
    Arm,
    Count,
    Effect,
    Enqueue,
    Log,
    Persist,
    QueueObserved,
    RecordOutcome,
    RedisDown,
)
from cookie_supervisor.core.refresh import by_person, note_asked, still_owed
from cookie_supervisor.core.source import (
    REQUESTED_KEPT,
    SHARED_HOLD,
    Source,
    Spell,
    State,
    Verification,
    arrival_after,
    log_line,
    notification,
    rewritten_since_asked,
    validate,
)
from cookie_supervisor.core.validation import (
    end_verification,
    job_key,
    overtaken,
    recheck_diagnosis,
    share,
)
from cookie_supervisor.model import (
    FinishedJob,
    Now,
    judged_key,
)

# --- the queue ----------------------------------------------------------------------------------


def queue_observed(state: State, obs: QueueObserved, now: Now) -> list[Effect]:
    fx: list[Effect] = []
    # Redis lost its data (a FLUSHALL, back empty: a new epoch), or shares made while it was
    # away were lost: a diagnosis this daemon holds is shared again (N3).
    emptied = None not in (state.epoch, obs.epoch) and obs.epoch != state.epoch
    reshare = emptied or state.redis_up is False
    if obs.epoch is not None:
        state.epoch = obs.epoch
    if emptied:
        state.emptied_at = now.mono
        _forget_old_epoch(state, obs)
    if state.redis_up is not True:
        fx.append(redis_back(state, now))
    state.redis_up, state.counts = True, obs.counts
    lifted: set[str] = set()  # a diagnosis that stood here is gone from Redis
    withdrawn: set[str] = set()  # our own diagnosis's shared copy is gone from Redis
    if obs.diagnoses is not None:
        for name, src in state.sources.items():
            stood, shared = src.diagnosis, src.shared_diagnosis
            fx += _shared_seen(state, src, obs.diagnoses.get(name), now, reshare=reshare)
            if stood is not None and src.diagnosis is None:
                lifted.add(name)
            gone = shared is not None and src.shared_diagnosis is None and not reshare
            if gone and src.diagnosed is not None:
                withdrawn.add(name)
    state.history_recovered = True
    initial = state.judged is None
    judged = state.judged if state.judged is not None else set()
    finished_ids = {j.job_id for j in obs.finished}
    outcomes = {j.job_id: j.outcome for j in obs.finished}
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
        kept = _asked_after_the_read(src, before, obs, finished_ids)
        if kept:
            src.pending_job = before
        if src.pending_job in finished_ids:
            # The poll reads each pending job before the finished ones: a job that ended between
            # the two reads is named by both. It is finished; kept pending, a trigger was
            # answered `coalesced` onto it and never asked (N22).
            src.pending_job = None
        if src.pending_job is not None and src.pending_job not in src.requested:
            src.watched.setdefault(src.pending_job, now.wall)
            note_asked(src, src.pending_job, now)
            while len(src.watched) > REQUESTED_KEPT:
                del src.watched[next(iter(src.watched))]
        lost = src.pending_job is None and before in obs.vanished - finished_ids
        asked_again = before is not None and lost and src.pending_reason is Reason.MANUAL
        if before is not None and lost:
            fx += _job_lost(src, before)
        if src.riding is not None:
            fx += _ride_over(src, obs, outcomes, asked_again=asked_again)
        if src.pending_job is None:
            src.pending_reason = None
        if not kept:
            src.pending_progress = obs.progress.get(name) if src.pending_job is not None else None
    for src in state.sources.values():
        if src.owed is not None:  # after an outage, or restored from the state file
            fx += _pay_owed(state, src, now)  # instead of the need's pursuit (step)
        elif src.name in lifted and _failed_validation(src) and src.pending_job is None:
            # The diagnosis that explained the last failed validation is gone (a peer's pass
            # deleted it): that failure was taken under it, look again before a login (N21).
            fx += validate(src, "retry")
        elif src.name in withdrawn:
            # The shared copy of the diagnosis we hold is gone within one epoch: a peer's
            # validation contradicted it (or it expired). Look again: the run confirms it and
            # shares it anew, or drops it here too. Held, it kept a dead jar's refresh back for
            # a day after the account was lifted (N25).
            fx += validate(src, "retry", diagnose=True)
        fx += recheck_diagnosis(src, now)
    return fx


def _forget_old_epoch(state: State, obs: QueueObserved) -> None:
    """Redis lost its data: job ids start again, so what this daemon noted per id (when it asked
    a job, first saw a peer's pending) named jobs of the old epoch. Kept, a new job with the same
    id took the old one's ask as its own, and its upload looked older than the jar's problem
    (N31). The jobs pending now are this epoch's."""
    pending = set(obs.pending.values())
    for src in state.sources.values():
        for noted in (src.requested, src.watched, src.asked_mono):
            for job_id in [j for j in noted if j not in pending]:
                del noted[job_id]


def _shared_seen(
    state: State, src: Source, found: Reason | None, now: Now, *, reshare: bool
) -> list[Effect]:
    """The shared diagnosis as this poll read it. Gone with Redis's data (a new epoch), a peer's
    is held `SHARED_HOLD` for the daemon that found it to share it again; gone within one epoch
    (a deliberate delete: a validation contradicted it, or it expired) it is gone (N3)."""
    held = state.emptied_at is not None and now.mono - state.emptied_at < SHARED_HOLD
    if found is not None or not held:
        src.shared_diagnosis = found
    if reshare and found is None and src.diagnosed is not None:
        return [share(src, src.diagnosed, now)]
    return []


def _ride_over(
    src: Source, obs: QueueObserved, outcomes: Mapping[str, str], *, asked_again: bool
) -> list[Effect]:
    """A person's request answered `coalesced` from what the last poll read (N23). Found pending
    by a read taken after it, the job is theirs to wait for. Found ended before any such read,
    it may have ended before they asked: unless it brought fresh cookies or another job is on
    its way, their request is asked again as they made it, never dropped (P4)."""
    riding = src.riding
    assert riding is not None
    if src.pending_job == riding.job_id:
        if obs.read_at is None or obs.read_at >= riding.asked_mono:
            src.riding = None
        return []
    src.riding = None
    if outcomes.get(riding.job_id) == "completed" or src.pending_job is not None or asked_again:
        return []
    owed = riding.owed
    return [Enqueue(src.name, owed.reason, "owed", owed.force)]


def _asked_after_the_read(
    src: Source, job_id: str | None, obs: QueueObserved, finished_ids: set[str]
) -> bool:
    """The job we know pending became known (its ask answered, or first seen) after the poll's
    reads began: they could not see it, so not naming it proves nothing (N33). Dropped, its
    reason was lost for good (the next poll finds it again, reasonless): a person's request was
    not asked again when it vanished, and alert mails lost what the daemon had asked for."""
    if job_id is None or obs.pending.get(src.name) == job_id or obs.read_at is None:
        return False
    if job_id in finished_ids or job_id in obs.vanished:
        return False
    known = src.asked_mono.get(job_id)
    return known is not None and obs.read_at < known


def _job_lost(src: Source, job_id: str) -> list[Effect]:
    src.requested.pop(job_id, None)
    reason = src.pending_reason
    fx: list[Effect] = [
        Count("pending_jobs_lost_total", (src.name,)),
        log_line(logging.WARNING, "pending refresh job vanished from Redis", src, job_id=job_id),
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
        dropped = log_line(
            logging.INFO, "owed refresh dropped: its cause is gone", src, reason=owed.reason
        )
        return [*fx, dropped]
    if src.pending_job is not None and not by_person(owed):
        return fx
    if not by_person(owed) and owed.origin in ("validation", "retry") and _failed_validation(src):
        # The evidence is a failed validation from before the outage: look again before a login
        # is spent on it, as a retry does; its result pursues the need (N12).
        return [*fx, *validate(src, "retry")]
    # A person's request is asked even with a job pending: Redis answers `coalesced` with that
    # job, theirs to wait for; dropping it here answered nobody (N10, P4).
    return [*fx, Enqueue(src.name, owed.reason, "owed", owed.force)]


def _failed_validation(src: Source) -> bool:
    v = src.last_validation
    return v is not None and not v.ok and not v.offline


def _job_finished(src: Source, job: FinishedJob, now: Now, *, counted: bool) -> list[Effect]:
    src.history.append(job)
    requested = src.requested.pop(job.job_id, None)
    watched = src.watched.pop(job.job_id, None)
    if not counted:
        return []  # history recovered at start: counters are about what this process saw
    ok = job.outcome == "completed"
    fx: list[Effect] = [
        Count("refresh_jobs_finished_total", (src.name, job.outcome)),
        log_line(
            logging.INFO,  # one job's outcome; refreshes that keep failing warn once
            f"refresh job {job.outcome}",
            src,
            job_id=job.job_id,
            attempts=job.attempts_made,
        ),
        notification(
            "refresh_completed" if ok else "refresh_failed",
            src,
            job_key(job.job_id, job.created_at),
            f"refresh job {job.job_id} {job.outcome}",
            job.reason,
            job.job_id,
        ),
    ]
    if not ok:
        return [*fx, RecordOutcome(src.name, job.job_id, False)]
    if src.verifying is not None:
        fx += end_verification(src, "superseded")
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
        ended_mono=now.mono,
    )
    src.verifying = ver
    fx.append(Arm(src.name, "upload", ver.deadline))
    # The extractor uploads before it reports success: the new session may be here already.
    if (arrived := arrival_after(src, ver)) is not None:
        ver.session_at = arrived
        fx += validate(src, "verification")
    elif src.rewritten_at is not None and rewritten_since_asked(src, ver):
        # The jar was rewritten with the session already there while the job ran: the
        # extractor uploaded the same login (D14). The validation judges it, not `no_upload`.
        ver.session_at, ver.same_session = src.rewritten_at, True
        fx += validate(src, "verification")
    return fx + overtaken(src, now)  # the jar replaced while the job ran: pursued after (step)


def redis_went_down(state: State, event: RedisDown, now: Now) -> list[Effect]:
    if state.redis_up is False:
        if state.redis_down is not None:
            state.redis_down.repeats += 1
        return []
    state.redis_up, state.counts = False, None
    state.redis_down = Spell(now.mono)
    return [
        Log(logging.WARNING, "redis unavailable", {"problem": "redis_down", "error": event.error})
    ]


def redis_back(state: State, now: Now) -> Log:
    spell, state.redis_down = state.redis_down, None
    if spell is None:
        return Log(logging.INFO, "redis reachable", {})
    fields = {"problem": "redis_down", "lasted": round(now.mono - spell.since, 3)}
    return Log(logging.INFO, "redis unavailable: ended", {**fields, "repeats": spell.repeats})
