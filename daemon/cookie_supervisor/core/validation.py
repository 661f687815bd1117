"""Validations finished: the verdict, the verification of a refresh (verified, still failing,
no upload, superseded, unverified), the diagnosis that fresh cookies cannot help, and the backoff
a validation that passes on a new session resets."""

from __future__ import annotations

import logging

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import (
    Cancel,
    Count,
    Effect,
    Observe,
    Persist,
    RecordOutcome,
    ResetBackoff,
    ShareDiagnosis,
)
from cookie_supervisor.core.file import session_ended
from cookie_supervisor.core.health import track_usable
from cookie_supervisor.core.problems import validation_level
from cookie_supervisor.core.source import (
    DIAGNOSIS_RECHECK,
    FILE_STATES,
    Source,
    State,
    Verification,
    file_evidence,
    log_line,
    notification,
    replaced_since_asked,
    validate,
)
from cookie_supervisor.model import (
    NotifyEvent,
    Now,
    Policy,
    Validation,
    Verdict,
)
from cookie_supervisor.verdict import NOT_HONOURED, ValidationPlan
from cookie_supervisor.verdict import plan_validation as plan_for_policy


def plan_validation(src: Source, asked: bool = False) -> ValidationPlan:
    """What a validation of `src` may run. A standing diagnosis makes every run probe without
    cookies too, to confirm or drop it: without an account check nothing else asks for it."""
    return plan_for_policy(src.settings, asked or src.diagnosis is not None)


def validation_finished(state: State, src: Source, v: Validation, now: Now) -> list[Effect]:
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
        log_line(
            validation_level(src, v),
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
        fx.append(
            notification("validation_failed", src, f"{v.at:.0f}", f"failing: {result}", result)
        )
    elif (before is None or not before.ok) and v.ok:
        fx.append(notification("validation_recovered", src, f"{v.at:.0f}", "passing again", None))
    since = src.session_since
    if since is not None and v.started_at >= since:  # this validation speaks for this session
        if v.ok and not v.offline:
            src.seen_alive = src.session
        elif v.reason in NOT_HONOURED:
            fx += session_ended(src, now.wall, v.reason)  # YouTube no longer takes it
    fx += _judge_verification(src, v)
    fx += _track_diagnosis(src, v, now)
    if _began_before_session(src, v, now) and src.report and src.report.logged_in:
        # It began on the old jar, and the new session's own validation was skipped while it
        # ran (one in flight): look at the new one now, or nothing ever judges it (D13).
        fx += validate(src, "verification" if src.verifying else "file")
    if v.ok and not v.offline:  # an offline pass could not look online (N2)
        fx += _reset_backoff(src, fx)
        if src.excused is not None:  # the source works: the next upload nobody judges is excused
            src.excused = None
            fx.append(Persist())
    return fx


def _began_before_session(src: Source, v: Validation, now: Now) -> bool:
    """Did `v` begin before this run first saw the current session? Ordered on the monotonic
    clock (`took` is the runtime's measure): wall dates that a clock step moved cannot make every
    later validation look older than the session."""
    arrived = src.arrived_mono.get(src.session) if src.session is not None else None
    if src.switched_mono is not None and (arrived is None or src.switched_mono > arrived):
        arrived = src.switched_mono  # the jar went back to a session seen before
    return arrived is not None and v.took is not None and now.mono - v.took < arrived


def _track_diagnosis(src: Source, v: Validation, now: Now) -> list[Effect]:
    """A diagnosis stands until something newer contradicts it: a validation that passed on the
    network, or an account check saying the session is dead (that is the cookies after all). A
    run that proved nothing (timeout, rate limit) keeps it; one the wall blocked everywhere, a
    guest too, confirms it (N27)."""
    before = src.diagnosis
    if v.diagnosis is not None:
        src.diagnosed, src.diagnosis_checked = v.diagnosis, now.mono
        fx: list[Effect] = [share(src, v.diagnosis, now)]
        if before != v.diagnosis:
            fx.append(Persist())  # it stands across a restart too
            fx.append(
                log_line(
                    logging.WARNING,
                    "diagnosis: fresh cookies cannot help",
                    src,
                    diagnosis=v.diagnosis,
                )
            )
        return fx
    contradicted = (v.ok and not v.offline) or v.reason in NOT_HONOURED
    if before is None:
        return []
    if not contradicted and v.bare_ok is True and before in _GUEST_DISPROVES:
        return _guest_passed(src, v)
    if not contradicted:
        if src.diagnosed is None:
            return []
        # A run that could not tell keeps this daemon's diagnosis, and so the shared copy: it
        # stands in Redis as long as here, or a peer that cannot diagnose (no account check, or
        # validating on demand) asks a login while YouTube still rate-limits our runs (N14).
        return [share(src, src.diagnosed, now)]
    src.diagnosed = src.shared_diagnosis = src.diagnosis_checked = None
    return [ShareDiagnosis(src.name, None), *_dropped(src, before, v)]


# What a guest getting through (the cookie-less probe passed) proves wrong: the address is not
# flagged, no PO token is wanted. The account may still be the cause (N18).
_GUEST_DISPROVES = frozenset({Reason.IP_FLAGGED, Reason.PO_TOKEN_REQUIRED})


def _guest_passed(src: Source, v: Validation) -> list[Effect]:
    """Drop the address or PO-token diagnosis, this daemon's and the shared copy; a peer's
    `account_restricted` in Redis stays (a guest getting through is what it says too)."""
    before = src.diagnosis
    fx: list[Effect] = []
    if src.diagnosed in _GUEST_DISPROVES:
        src.diagnosed = src.diagnosis_checked = None
    if src.shared_diagnosis in _GUEST_DISPROVES:
        src.shared_diagnosis = None
        fx.append(ShareDiagnosis(src.name, None))
    elif src.diagnosed is None and src.shared_diagnosis is None:
        fx.append(ShareDiagnosis(src.name, None))  # ours was the shared one
    return [*fx, *_dropped(src, before, v)]


def _dropped(src: Source, before: Reason | None, v: Validation) -> list[Effect]:
    return [
        Persist(),
        log_line(
            logging.INFO,
            "diagnosis no longer stands",
            src,
            diagnosis=before,
            result="ok" if v.ok else v.reason,
        ),
    ]


def share(src: Source, diagnosis: Reason, now: Now) -> ShareDiagnosis:
    """Share this daemon's diagnosis for `diagnosis_ttl`, and confirm it again halfway (N32)."""
    ttl = diagnosis_ttl(src.settings)
    src.share_due = now.mono + ttl / 2
    return ShareDiagnosis(src.name, diagnosis, ttl)


def recheck_diagnosis(src: Source, now: Now) -> list[Effect]:
    """The diagnosis this daemon holds stands until something contradicts it; the copy it
    shared stands in Redis `diagnosis_ttl` unless confirmed. A source validating only on demand
    may run nothing for a day: the copy expired while the diagnosis still stood here and in
    the world, and a peer (offline-only, or its own check not run) asked its due rotation behind
    the PO-token wall (N32, P1). Halfway through, the holder validates again: the result
    confirms and shares it anew, contradicts and drops it, or (rate limited) keeps it (N14)."""
    if src.diagnosed is None or (src.share_due is not None and now.mono < src.share_due):
        return []
    fx = validate(src, "diagnosis", diagnose=True)
    if fx:  # one that proves nothing (the file unreadable) is tried again later, not each poll
        src.share_due = now.mono + DIAGNOSIS_RECHECK
    return fx


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


def _judge_verification(src: Source, v: Validation) -> list[Effect]:
    ver = src.verifying
    # Only a validation that started on the new session speaks for the refresh: one that began
    # on the old jar and finished after the upload says nothing about the new cookies.
    if ver is None or ver.session_at is None or v.started_at < ver.session_at:
        return []
    if v.offline and v.ok:
        # Offline-only (no validation URLs): the jar looks logged in, nobody asked YouTube (N2).
        return end_verification(src, "unverified")
    if not v.conclusive or (v.offline and v.reason in FILE_STATES):
        # Inconclusive (rate limited, a diagnosis, the network) or the file caught mid-write:
        # the deadline ends it `unverified` if nothing conclusive comes (D3).
        return []
    verdict: Verdict = "verified" if v.ok else "still_failing"
    fx = end_verification(src, verdict)
    if not v.ok:
        # Fresh cookies did not help: before asking again, find out whether they ever could.
        # The session is a fresh login (`diagnosis`: known honoured, N18) only when this run saw
        # the job asked or pending and the upload come after it; a job this run first met
        # finished (it was down when it ran) uploaded a session of unknown age, which YouTube
        # may have dropped since: a guest getting through then is the cookies' failure (N26).
        fx += validate(src, "diagnosis" if ver.asked_mono is not None else "retry", diagnose=True)
    return fx


def overtaken(src: Source, now: Now) -> list[Effect]:
    """The file's own problem (missing, corrupt, logged out) outlasted its grace while a
    verification is open, and the jar changed since the job was asked: whatever the job uploaded
    was replaced or removed, no validation can judge it any more, and the open verification must
    not hold back the file's own refresh until `upload_timeout` (N11). `unverified`: it blames
    nothing. A jar that never changed since the ask waits for the deadline: `no_upload`."""
    ver = src.verifying
    if ver is None or file_evidence(src, now) is None or not replaced_since_asked(src, ver):
        return []
    return end_verification(src, "unverified")


def end_verification(src: Source, verdict: Verdict, *, deadline: bool = False) -> list[Effect]:
    """End the open verification with `verdict`; `deadline`: the upload arrived and no
    validation could judge it by the deadline (D3's `unverified`)."""
    ver = src.verifying
    assert ver is not None
    src.verifying = None
    ok = verdict == "verified"
    if ok and ver.same_session and src.session is not None and src.session == src.reset_by:
        ok = False  # it renewed nothing, and this session reset the count once already (P1)
    unsuccessful = verdict == "unverified" and (
        # The upload kept the session: whatever YouTube would have said, it renewed nothing. An
        # unsuccessful refresh, so a due rotation the extractor cannot end (while YouTube
        # rate-limits every validation, or nobody looks online) backs off (N7, P1).
        ver.same_session or (deadline and not _excuse_first(src, ver))
    )
    fx: list[Effect] = [
        Cancel(src.name, "upload"),
        Persist(),  # the job joins the saved record of judged jobs: a restart books it no more
        Count("refresh_verifications_total", (src.name, verdict)),
        log_line(
            logging.INFO,  # one refresh's outcome; refreshes that keep failing warn once
            f"refresh verification: {verdict}",
            src,
            job_id=ver.job_id,
            unsuccessful=unsuccessful or None,
        ),
    ]
    if unsuccessful:
        fx.append(RecordOutcome(src.name, ver.job_id, False))
    # Otherwise `unverified` is neither a success nor an unsuccessful refresh: the count stays.
    if verdict not in ("superseded", "unverified"):
        fx.append(RecordOutcome(src.name, ver.job_id, ok))
        reason = v_reason if (v_reason := _verdict_reason(src, verdict)) else ver.reason
        fx.append(
            notification(
                _VERDICT_EVENT[verdict],
                src,
                job_key(ver.job_id, ver.created_at),
                f"refresh job {ver.job_id}: {_VERDICT_TEXT[verdict]}",
                reason,
                ver.job_id,
            )
        )
    return fx


def _excuse_first(src: Source, ver: Verification) -> bool:
    """Excuse this upload nobody could judge if it is the first since the source last worked (a
    validation passed online), noting it in `src.excused`; whether it was excused. The first is:
    YouTube may rate-limit for an hour, and it blames nothing (D3). A second one is not: while
    YouTube rate-limits every check and the extractor uploads sessions that fail, each refresh
    ended `unverified`, the backoff never grew, and a learned renewal asked a login every 21
    minutes (N30, P1). It counts as an unsuccessful refresh: the backoff grows to
    `refresh_backoff_max`, never locking the source out, and the next pass online resets it (P6)."""
    if src.excused is not None:
        return False
    src.excused = ver.job_id
    return True


def _verdict_reason(src: Source, verdict: Verdict) -> str | None:
    """`refresh_still_failing` names the new failure; the other verdicts the job's reason."""
    v = src.last_validation
    if verdict == "still_failing" and v is not None and v.reason is not None:
        return v.reason.value
    return None


def job_key(job_id: str, created_at: float) -> str:
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
