"""The core's validation sub-machine (core/validation.py), driven with a fake clock: verdicts,
the verification of a refresh, the diagnosis that fresh cookies cannot help, the backoff reset."""

from __future__ import annotations

import pytest

from cookie_supervisor import core, memory
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import (
    Arm,
    Cancel,
    Enqueue,
    FileInspected,
    Notify,
    QueueObserved,
    RecordOutcome,
    ResetBackoff,
    RunValidation,
    ShareDiagnosis,
    TimerFired,
)
from tests.corekit import (
    DAY,
    T0,
    Harness,
    completed_refresh,
    counted,
    diagnosed_by,
    enqueued,
    jar,
    job,
    of,
    settings,
    uploaded,
)


def test_defect6_validation_started_on_the_old_jar_does_not_judge_the_refresh() -> None:
    h = Harness()
    completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    started_old = h.now
    h.file(jar("B"), at=T0 + 120)  # the upload lands while a validation of A runs
    h.src.validating = True
    fx = h.validated(False, Reason.BOT_DETECTION, started_at=started_old)
    assert counted(fx, "refresh_verifications_total") == []
    assert of(fx, Enqueue) == []  # not a duplicate job either: the verification is still open
    fx = h.validated(True, started_at=T0 + 121)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "9", True) in fx


def test_defect6_old_session_rewritten_after_completion_is_not_the_upload() -> None:
    h = Harness(settings(upload_timeout=600))
    completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    fx = h.file(jar("A", size=2100), at=T0 + 150)  # the backend's yt-dlp saved the old session
    assert of(fx, RunValidation) == []
    fx = h(TimerFired("main", "upload"), at=T0 + 700)
    assert counted(fx, "refresh_verifications_total") == [("main", "no_upload")]
    assert RecordOutcome("main", "9", False) in fx


def test_defect6_upload_before_the_job_reports_success_is_seen() -> None:
    h = Harness()
    completed_refresh(h)
    fx = h.file(jar("B"), at=T0 + 90)  # the extractor uploads, then reports success
    assert RunValidation("main", "file") in fx
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    assert h.src.verifying is not None and h.src.verifying.session_at == T0 + 90
    fx = h.validated(True, started_at=T0 + 91)  # the validation the upload started
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]


# --- backoff and diagnosis (issue "Refreshes with brakes") -------------------------------------


def test_backoff_answer_arms_a_retry_and_only_a_passing_validation_resets() -> None:
    h = Harness()
    h.file(jar("A"))
    ask = enqueued(h.validated(False, Reason.BOT_DETECTION))
    fx = h.answer(ask, "backoff", retry_after=1800)
    assert Arm("main", "retry", T0 + 1800) in fx
    # the timer decides: the evidence is a validation from before the wait, so it looks again
    assert of(h(TimerFired("main", "retry"), at=T0 + 100), RunValidation) != []
    assert of(h.validated(False, Reason.BOT_DETECTION, trigger="retry"), Enqueue) != []
    h(core.BackoffObserved("main", 3, T0 + 7200))
    fx = h.file(jar("B"), at=T0 + 200)  # a new session is not yet a working one (P6)
    assert of(fx, ResetBackoff) == [] and h.src.failures == 3
    fx = h.validated(True, started_at=T0 + 201)
    assert ResetBackoff("main") in fx and h.src.failures == 0


# --- issue 16 D1: a session resets the backoff only once a validation on it passed --------------


def test_d1_refreshes_uploading_new_sessions_that_fail_keep_counting() -> None:
    """Each refresh uploads a new session that YouTube does not honour: every one is booked
    `still_failing`, nothing resets the count, and the next ask meets a growing backoff."""
    h = Harness()
    h.file(jar("S0"))
    ask = enqueued(h.validated(False, Reason.COOKIES_ROTATED))
    resets: list[ResetBackoff] = []
    for i in range(1, 5):
        h.answer(ask, "enqueued", job_id=str(i))
        h(QueueObserved({"main": str(i)}))
        t = h.now + 10
        fx = h(QueueObserved({"main": None}, (job(str(i), at=t, created=t - 5),)), at=t)
        fx += h.file(jar(f"S{i}"), at=t + 1)  # the refresh's upload: a new session
        resets += of(fx, ResetBackoff)
        assert of(fx, RunValidation) != []
        fx = h.validated(False, Reason.COOKIES_ROTATED, started_at=t + 1, trigger="verification")
        assert RecordOutcome("main", str(i), False) in fx
        assert RunValidation("main", "diagnosis", diagnose=True) in fx
        h(core.BackoffObserved("main", i, t + 2 + core.backoff_delay(i, 60, 3600)))
        assert h.src.failures == i  # Redis's count, never reset by the new session
        fx = h.validated(False, Reason.COOKIES_ROTATED, trigger="diagnosis")
        resets += of(fx, ResetBackoff)
        ask = enqueued(fx)  # the need stands: Redis answers with the backoff
    assert resets == []


def test_d1_a_passing_validation_on_any_session_resets_and_ends_an_armed_retry() -> None:
    h = Harness()
    h.file(jar("A"))
    ask = enqueued(h.validated(False, Reason.COOKIES_ROTATED))
    h.answer(ask, "backoff", retry_after=600)
    assert h.src.failures >= 1 and h.src.retry_at == T0 + 600
    fx = h.validated(True)
    assert ResetBackoff("main") in fx and Cancel("main", "retry") in fx
    assert h.src.retry_at is None and h.src.backoff_until is None
    assert of(h.validated(True), ResetBackoff) == []  # nothing to reset: no round trip


def test_still_failing_runs_a_diagnosis_before_asking_again() -> None:
    h = Harness()
    completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    h.file(jar("B"), at=T0 + 110)
    fx = h.validated(False, Reason.BOT_DETECTION, started_at=T0 + 111)
    assert RecordOutcome("main", "9", False) in fx
    assert RunValidation("main", "diagnosis", diagnose=True) in fx
    assert of(fx, Enqueue) == []  # the diagnosis comes first
    fx = h.validated(
        False, Reason.IP_FLAGGED, media_reason=Reason.BOT_DETECTION, diagnosis=Reason.IP_FLAGGED
    )
    assert of(fx, Enqueue) == []
    assert counted(fx, "validation_diagnoses_total") == [("main", "ip_flagged")]


# --- notifications -----------------------------------------------------------------------------


def test_validation_notifications_are_transitions_only() -> None:
    h = Harness()
    h.file(jar())
    # From no result too (a start): whether it was announced already is the runtime's record
    # of incidents (webhooks.Incidents), kept across restarts and shared through Redis.
    events = [n.event for n in of(h.validated(False, Reason.NETWORK_ERROR), Notify)]
    events += [n.event for n in of(h.validated(True), Notify)]
    events += [n.event for n in of(h.validated(False, Reason.NETWORK_ERROR), Notify)]
    events += [n.event for n in of(h.validated(False, Reason.NETWORK_ERROR), Notify)]
    events += [n.event for n in of(h.validated(True), Notify)]
    events += [n.event for n in of(h.validated(True), Notify)]
    assert events == [
        "validation_failed",
        "validation_recovered",
        "validation_failed",
        "validation_recovered",
    ]


def test_a_validation_the_daemon_could_not_read_for_is_no_verdict() -> None:
    h = Harness()
    h.file(jar())
    h.validated(True)
    fx = h.validated(False, Reason.OTHER, read_error="EMFILE", offline=True)
    assert fx == [] and h.src.last_validation is not None and h.src.last_validation.ok


def test_d2a_a_run_the_bot_wall_also_blocks_keeps_the_diagnosis() -> None:
    """A run that cannot tell (the media probe walled, the account check failing, no guest's
    verdict; since N27 a guest walled too confirms the diagnosis instead) keeps the diagnosis, and
    the next validation probes without cookies again to confirm or drop it."""
    h = Harness()
    h.file(jar())
    fx = diagnosed_by(h)
    assert ShareDiagnosis("main", Reason.IP_FLAGGED, 3 * 1800.0) in fx
    for _ in range(10):  # periodic validations: media and account both meet the wall
        fx = h.validated(
            False, Reason.BOT_DETECTION, media_reason=Reason.BOT_DETECTION, account_ok=False
        )
        fx += h.validated(False, Reason.RATE_LIMITED, media_reason=Reason.RATE_LIMITED)
        assert of(fx, Enqueue) == [] and h.src.diagnosis is Reason.IP_FLAGGED
    assert core.plan_validation(h.src).diagnose is True
    fx = h(TimerFired("main", "rotation"), at=T0 + 8 * DAY)  # a due rotation waits too
    assert of(fx, Enqueue) == []


@pytest.mark.parametrize(
    ("ok", "reason", "offline", "stands"),
    [
        (True, None, False, False),  # the network lets the cookies through again
        (False, Reason.COOKIES_ROTATED, False, False),  # the account check: the session is dead
        (False, Reason.LOGGED_OUT, False, False),
        (True, None, True, True),  # an offline look at the jar says nothing about the address
        (False, Reason.TIMEOUT, False, True),
    ],
)
def test_d2a_what_ends_a_diagnosis(
    ok: bool, reason: Reason | None, offline: bool, stands: bool
) -> None:
    h = Harness()
    h.file(jar())
    diagnosed_by(h)
    fx = h.validated(ok, reason, offline=offline)
    assert (h.src.diagnosis is Reason.IP_FLAGGED) is stands
    assert (ShareDiagnosis("main", None) in fx) is not stands


def test_d14_the_same_session_passing_again_does_not_reset_the_backoff_again() -> None:
    """A due rotation the refreshes cannot end (they bring back the same, honoured session): each
    no_upload counts, and the session's passing validations reset the count once, not each time."""
    h = Harness(settings(rotate_after=DAY))
    h.file(jar("A", mtime=T0))
    h(core.BackoffObserved("main", 1, T0 + 60))
    assert ResetBackoff("main") in h.validated(True)  # A passed: one reset
    for n in (1, 2, 3):
        h(core.BackoffObserved("main", n, h.now + 60 * 2**n))  # a no_upload booked each time
        assert of(h.validated(True), ResetBackoff) == []
        assert h.src.failures == n
    h.file(jar("B"), at=T0 + 10)
    assert ResetBackoff("main") in h.validated(True, started_at=T0 + 11)  # a new session passed


def test_d6_a_restart_during_verification_books_the_job_again() -> None:
    h = Harness(settings(upload_timeout=600))
    h.file(jar("A"))
    h(QueueObserved({"main": None}))
    done = job("1", at=T0 + 10, created=T0)
    h(QueueObserved({"main": None}, (done,)), at=T0 + 10)
    assert h.src.verifying is not None  # the upload is awaited when the daemon restarts
    saved = memory.snapshot(h.state, b"k" * 32)
    later = Harness(settings(upload_timeout=600), redis_up=None)
    memory.restore(later.state, saved)
    later.file(jar("A"), at=T0 + 20)
    fx = later(QueueObserved({"main": None}, (done,)), at=T0 + 30)
    assert later.src.verifying is not None and later.src.verifying.job_id == "1"
    fx += later(TimerFired("main", "upload"), at=T0 + 30 + 600)
    assert RecordOutcome("main", "1", False) in fx  # no_upload: booked, not lost


def test_d3_a_verification_with_only_inconclusive_validations_ends_unverified() -> None:
    h = Harness(settings(upload_timeout=600))
    uploaded(h)
    for n, reason in enumerate((Reason.RATE_LIMITED, Reason.NETWORK_ERROR)):
        h.now = T0 + 130 + n
        fx = h.validated(False, reason, started_at=h.now)
        assert counted(fx, "refresh_verifications_total") == []
    diagnosed = h.validated(
        False, Reason.IP_FLAGGED, media_reason=Reason.BOT_DETECTION, diagnosis=Reason.IP_FLAGGED
    )
    assert counted(diagnosed, "refresh_verifications_total") == []
    fx = h(TimerFired("main", "upload"), at=T0 + 700)  # the deadline: no conclusive validation
    assert counted(fx, "refresh_verifications_total") == [("main", "unverified")]
    assert of(fx, RecordOutcome) == [] and of(fx, Notify) == []  # blames nothing, counts nothing
    assert h.src.verifying is None  # automatic refreshes are no longer blocked


def test_d3_an_unverified_end_lets_the_next_automatic_refresh_through() -> None:
    h = Harness(settings(upload_timeout=600))
    uploaded(h)
    h.validated(False, Reason.RATE_LIMITED, started_at=T0 + 130)
    h(TimerFired("main", "upload"), at=T0 + 700)
    fx = h.validated(False, Reason.LOGGED_OUT, started_at=T0 + 800)
    assert enqueued(fx).reason is Reason.LOGGED_OUT


def test_d3_the_offline_missing_file_check_does_not_judge_a_refresh() -> None:
    h = Harness(settings(upload_timeout=600))
    uploaded(h)
    # a periodic validation caught the jar missing (an scp upload, a rename) after the upload
    fx = h.validated(False, Reason.MISSING_COOKIES, offline=True, started_at=T0 + 130)
    assert counted(fx, "refresh_verifications_total") == [] and of(fx, RecordOutcome) == []
    fx = h.validated(True, started_at=T0 + 140)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "9", True) in fx


def test_n2_an_offline_only_daemon_neither_verifies_a_refresh_nor_resets_the_backoff() -> None:
    h = Harness(settings(upload_timeout=600, validation_urls=[]))
    completed_refresh(h)
    h(core.BackoffObserved("main", 2, T0 + 600))
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    h.file(jar("B"), at=T0 + 120)
    fx = h.validated(True, offline=True, started_at=T0 + 121)  # the jar looks logged in
    assert counted(fx, "refresh_verifications_total") == [("main", "unverified")]
    assert of(fx, RecordOutcome) == [] and of(fx, ResetBackoff) == []
    assert h.src.failures == 2
    fx = h.validated(True, offline=True, started_at=T0 + 400)  # a periodic offline pass
    assert of(fx, ResetBackoff) == [] and h.src.failures == 2


def test_d14_a_refresh_uploading_the_same_session_is_judged_by_its_validation() -> None:
    h = Harness(settings(upload_timeout=600))
    completed_refresh(h)
    fx = h.file(jar("A", size=2100), at=T0 + 90)  # the extractor uploads the same login
    assert of(fx, RunValidation) == []  # a rewrite of the same session: nothing new yet
    fx = h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    assert RunValidation("main", "verification") in fx  # it was the job's upload
    fx = h.validated(True, started_at=T0 + 101)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "9", True) in fx  # the session's first reset


def test_d14_same_session_refreshes_reset_the_count_once_then_keep_counting() -> None:
    h = Harness(settings(upload_timeout=600))
    completed_refresh(h)
    h.file(jar("A", size=2100), at=T0 + 90)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    h.validated(True, started_at=T0 + 101)  # verified, reset once (by session A)
    ask = enqueued(h.validated(False, Reason.BOT_DETECTION, started_at=T0 + 200))
    h.answer(ask, "enqueued", job_id="10")
    h.file(jar("A", size=2200), at=T0 + 290)  # the same session again
    h(QueueObserved({"main": None}, (job("10", at=T0 + 300, created=T0 + 200),)), at=T0 + 300)
    fx = h.validated(True, started_at=T0 + 301)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "10", False) in fx  # renewed nothing: the backoff grows (P1)
    assert of(fx, ResetBackoff) == []


def test_n5_a_wall_clock_stepped_back_does_not_hide_a_peers_upload() -> None:
    s = core.State.of([settings(upload_timeout=600).policy()])
    s.redis_up = True
    core.step(s, FileInspected("main", jar("A")), core.Now(mono=100.0, wall=T0))
    core.step(s, QueueObserved({"main": None}), core.Now(mono=101.0, wall=T0 + 1))
    core.step(s, QueueObserved({"main": "7"}), core.Now(mono=102.0, wall=T0 + 2))  # a peer's job
    # the wall clock is stepped back an hour; the upload lands 30 s later
    core.step(s, FileInspected("main", jar("B")), core.Now(mono=132.0, wall=T0 - 3568))
    done = job("7", at=T0 + 40, created=T0)
    fx = core.step(s, QueueObserved({"main": None}, (done,)), core.Now(mono=140, wall=T0 - 3560))
    src = s.sources["main"]
    assert of(fx, Arm) == [Arm("main", "upload", 740.0)]
    assert src.verifying is not None and src.verifying.session_at == T0 - 3568  # tied to job 7
