"""The core's file sub-machine (core/file.py), driven with a fake clock: the jar's problems and
their grace, login sessions, the rotation timer, and the login judged on the core's clock.

Each defect listed in the issue "The decision core as a pure state machine" has a test named after
it (here and in the other tests/test_core_*.py); they failed on the old `Supervisor` and pass on
`core.step`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cookie_supervisor import core, memory
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import (
    Arm,
    Cancel,
    Enqueue,
    FileInspected,
    Inspect,
    Notify,
    QueueObserved,
    RecordOutcome,
    ResetBackoff,
    RunValidation,
    TimerFired,
)
from cookie_supervisor.model import CookieReport
from tests.corekit import (
    CORRUPT,
    DAY,
    MISSING,
    PATH,
    T0,
    Harness,
    counted,
    enqueued,
    jar,
    job,
    of,
    settings,
    with_problem,
)

# --- defect 1: a file that stays missing or unparseable is asked for again -------------------


@pytest.mark.parametrize(("report", "grace"), [(MISSING, 60.0), (CORRUPT, 30.0)])
def test_defect1_unusable_file_is_asked_for_again_after_each_cooldown(
    report: CookieReport, grace: float
) -> None:
    h = Harness()
    h.file(jar())
    fx = h.file(report, at=T0 + 1)
    assert of(fx, Enqueue) == []  # an upload deletes, renames and truncates: wait out the grace
    assert Arm("main", "grace", T0 + 1 + grace) in fx
    assert of(h(TimerFired("main", "grace"), at=T0 + 1 + grace), Inspect) == [Inspect("main")]
    first = enqueued(h.file(report))
    assert first.reason is report.problem()
    fx = h.answer(first, "cooldown", job_id="7", retry_after=600)
    assert Arm("main", "retry", h.now + 600) in fx
    assert (
        of(h.file(report, at=h.now + 5), Enqueue) == []
    )  # a rescan during the cooldown asks nothing
    again = enqueued(h(TimerFired("main", "retry"), at=T0 + 1 + grace + 600))
    assert again.reason is report.problem()


def test_defect1_failed_job_for_a_missing_file_is_asked_for_again() -> None:
    h = Harness()
    h.file(jar())
    h.file(MISSING, at=T0 + 1)
    first = enqueued(h.file(MISSING, at=T0 + 100))
    h.answer(first, "enqueued", job_id="3")
    h(QueueObserved({"main": "3"}))
    fx = h(
        QueueObserved({"main": None}, (job("3", "failed", at=T0 + 200, created=T0 + 100),)),
        at=T0 + 200,
    )
    assert RecordOutcome("main", "3", False) in fx
    assert enqueued(fx).reason is Reason.MISSING_COOKIES  # Redis's cooldown will pace it


# --- defect 2: a due rotation stays due until a refresh is pending -----------------------------


def test_defect2_due_rotation_meeting_a_cooldown_is_retried() -> None:
    h = Harness(settings(rotate_after=7 * DAY))
    assert Arm("main", "rotation", T0 + 7 * DAY) in h.file(jar(mtime=T0))
    ask = enqueued(h(TimerFired("main", "rotation"), at=T0 + 7 * DAY))
    assert ask.reason is Reason.SCHEDULED_ROTATION
    fx = h.answer(ask, "cooldown", job_id="1", retry_after=120)
    assert Arm("main", "retry", T0 + 7 * DAY + 120) in fx
    again = enqueued(h(TimerFired("main", "retry"), at=T0 + 7 * DAY + 120))
    assert again.reason is Reason.SCHEDULED_ROTATION
    h.answer(again, "enqueued", job_id="2")
    fx = h(
        QueueObserved({"main": None}, (job("2", "failed", at=h.now + 50, created=h.now),)),
        at=h.now + 50,
    )
    assert enqueued(fx).reason is Reason.SCHEDULED_ROTATION  # failed job: still due, asked again


# --- defect 3: the same session after a truncation or a missing spell is not new --------------


@pytest.mark.parametrize("gap", [MISSING, CORRUPT, jar(None)])
def test_defect3_same_session_after_a_gap_keeps_its_age(gap: CookieReport) -> None:
    h = Harness(settings(rotate_after=7 * DAY))
    h.file(jar("A", mtime=T0 - DAY))
    since = h.src.session_since
    h.file(gap, at=T0 + 10)
    fx = h.file(jar("A"), at=T0 + 11)
    assert h.src.session_since == since == T0 - DAY
    assert of(fx, ResetBackoff) == [] and of(fx, RunValidation) == []
    assert Arm("main", "rotation", T0 + 6 * DAY) in fx


# --- defect 4: a restart keeps the session's age ------------------------------------------------


def test_defect4_restart_keeps_session_age_through_the_state_file() -> None:
    h = Harness(settings(rotate_after=7 * DAY))
    h.file(jar("A", mtime=T0))
    h.file(jar("B", mtime=T0 + DAY), at=T0 + DAY)  # a refresh brought session B
    saved = memory.snapshot(h.state, b"k" * 32)
    later = Harness(settings(rotate_after=7 * DAY))
    memory.restore(later.state, saved)
    # The backend's yt-dlp rewrote the file just now: mtime says nothing about the session.
    fx = later.file(jar("B", mtime=T0 + 6 * DAY), at=T0 + 6 * DAY)
    assert later.src.session_since == T0 + DAY
    assert Arm("main", "rotation", T0 + 8 * DAY) in fx
    assert of(fx, ResetBackoff) == []  # B is not new to this source


@pytest.mark.parametrize("reason", [Reason.UNREADABLE, Reason.NOT_A_FILE])
def test_defect10_unreadable_or_not_a_file_never_asks(reason: Reason) -> None:
    h = Harness()
    h.file(jar())
    bad = CookieReport(path=PATH, exists=True, error="x")
    bad = replace(bad, error="permission denied" if reason is Reason.UNREADABLE else "a directory")
    fx = h.file(with_problem(bad, reason), at=T0 + 1)
    fx += h(TimerFired("main", "grace"), at=T0 + 3600)
    fx += h.file(with_problem(bad, reason))
    assert of(fx, Enqueue) == [] and h.src.problem is reason


def test_os_error_is_never_evidence() -> None:
    h = Harness()
    h.file(jar())
    emfile = CookieReport(path=PATH, exists=True, error="cannot read: EMFILE", os_error="EMFILE")
    fx = h.file(emfile, at=T0 + 1) + h.file(emfile, at=T0 + 3600)
    assert of(fx, Enqueue) == []
    assert counted(fx, "file_read_errors_total") == [("main", "EMFILE")] * 2
    assert len([e for e in fx if isinstance(e, core.Log)]) == 1  # logged once, counted always
    assert h.src.report is not None and h.src.report.logged_in  # the last real report stands


# --- issue "Hold under hostile input": a shrinking jar gets a confirmation window -------------


def test_shrinking_jar_that_lost_its_login_is_confirmed_before_it_counts() -> None:
    h = Harness(settings(logged_out_confirm=10))
    h.file(jar(size=2000, cookies=20))
    fx = h.file(jar(None, size=300, cookies=3), at=T0 + 1)  # a slow truncate-and-write
    assert of(fx, Enqueue) == [] and Arm("main", "grace", T0 + 11) in fx
    fx = h.file(jar("A", size=2000, cookies=20), at=T0 + 4)  # the write finished
    assert of(fx, Enqueue) == [] and Cancel("main", "grace") in fx
    h.file(jar(None, size=300, cookies=3), at=T0 + 20)
    h(TimerFired("main", "grace"), at=T0 + 30)
    assert enqueued(h.file(jar(None, size=300, cookies=3))).reason is Reason.LOGGED_OUT


def test_jar_logged_out_without_shrinking_counts_at_once() -> None:
    h = Harness(settings(renew_before=0))
    h.file(jar(expires=T0 + 5))
    fx = h.file(replace(jar(None), login_expired=True, login_expires_at=T0 + 5), at=T0 + 6)
    assert enqueued(fx).reason is Reason.EXPIRED


def test_expiring_and_missing_are_announced_once_per_spell() -> None:
    h = Harness(settings(renew_before=2 * DAY, rotate_after=0))
    h.file(jar(expires=T0 + 3 * DAY))
    fx = h(TimerFired("main", "rotation"), at=T0 + DAY)
    fx += h(TimerFired("main", "rotation"), at=T0 + DAY + 60)
    assert [n.event for n in of(fx, Notify)] == ["cookies_expiring"]
    h.file(MISSING, at=T0 + DAY + 100)
    fx = h(TimerFired("main", "grace"), at=T0 + DAY + 200) + h(TimerFired("main", "grace"))
    assert [n.event for n in of(fx, Notify)] == ["file_missing"]


def test_an_unchanged_rotation_date_is_not_armed_again() -> None:
    h = Harness(settings(rotate_after=7 * DAY))
    assert Arm("main", "rotation", T0 + 7 * DAY) in h.file(jar(mtime=T0))
    for i in range(1, 5):  # the backend's yt-dlp rewrites the same session
        fx = h.file(jar(size=2000 + i, mtime=T0 + i), at=T0 + i)
        assert of(fx, Arm) == [] and of(fx, Cancel) == []
    assert Cancel("main", "rotation") in h.file(jar(None), at=T0 + 10)


# --- issue 16: intervals on the monotonic clock, dates on the wall clock -----------------------


def test_a_wall_clock_stepped_back_an_hour_does_not_stretch_a_grace_period() -> None:
    s = core.State.of([settings().policy()])
    s.redis_up = True
    core.step(s, FileInspected("main", jar()), core.Now(mono=100.0, wall=T0))
    fx = core.step(s, FileInspected("main", MISSING), core.Now(mono=101.0, wall=T0 + 1))
    assert Arm("main", "grace", 161.0) in fx  # monotonic: 60 s from now
    # the wall clock is stepped back an hour; 60 s of real time pass
    fx = core.step(s, TimerFired("main", "grace"), core.Now(mono=161.0, wall=T0 - 3600 + 61))
    fx += core.step(s, FileInspected("main", MISSING), core.Now(mono=161.1, wall=T0 - 3539))
    assert enqueued(fx).reason is Reason.MISSING_COOKIES


def test_the_core_judges_the_login_on_its_own_clock() -> None:
    """cookiefile reports when the login pair lapses; whether it has lapsed is the core's `now`."""
    from cookie_supervisor import cookiefile

    text = (
        "# Netscape HTTP Cookie File\n"
        f".youtube.com\tTRUE\t/\tTRUE\t{int(T0) + 100}\tLOGIN_INFO\tv1\n"
        f".youtube.com\tTRUE\t/\tTRUE\t{int(T0) + 50}\tSAPISID\tv2\n"
        f".youtube.com\tTRUE\t/\tTRUE\t{int(T0) + 200}\t__Secure-3PAPISID\tv3\n"
    )
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as fh:
        fh.write(text)
        fh.flush()
        report = cookiefile.inspect(fh.name, T0)
    assert report.logged_in and report.login_until == T0 + 100  # LOGIN_INFO lapses first
    assert report.logged_in_at(T0 + 99) and not report.logged_in_at(T0 + 100)
    assert report.problem_at(T0 + 150) is Reason.EXPIRED and report.problem_at(T0) is None
    h = Harness(settings(renew_before=0))
    h.file(report, at=T0 + 150)  # the same report, judged on the core's clock
    assert h.src.problem is Reason.EXPIRED
