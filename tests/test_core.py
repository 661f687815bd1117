"""The decision core, driven with a fake clock: no Redis, no subprocess, no sleep.

Each defect listed in the issue "The decision core as a pure state machine" has a test here named
after it; they failed on the old `Supervisor` (reproduced against a real redis-server) and pass on
`core.step`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cookie_supervisor import core, state
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.core import (
    Answer,
    Arm,
    Cancel,
    Count,
    Enqueue,
    FileInspected,
    Inspect,
    Notify,
    QueueObserved,
    RecordOutcome,
    RedisDown,
    RefreshAnswered,
    RefreshAsked,
    ResetBackoff,
    RunValidation,
    ShareDiagnosis,
    TimerFired,
    Validation,
    ValidationFinished,
)
from cookie_supervisor.model import CookieReport

E = TypeVar("E")
T0 = 1_800_000_000.0
DAY = 86400.0
PATH = Path("/srv/cookies.txt")


def settings(name: str = "main", **kw: Any) -> SourceSettings:
    return SourceSettings(name=name, cookies_file=PATH, **kw)


def jar(fp: str | None = "A", *, size: int = 2000, cookies: int = 20, **kw: Any) -> CookieReport:
    """A report as cookiefile.inspect makes it; `fp` None means logged out."""
    logged_in = fp is not None
    return CookieReport(
        path=PATH,
        exists=True,
        size=size,
        mtime=kw.pop("mtime", T0),
        mode=0o600,
        cookies=cookies,
        login_cookies=("LOGIN_INFO", "SAPISID") if logged_in else ("SAPISID",),
        logged_in=logged_in,
        fingerprint=fp,
        login_expires_at=kw.pop("expires", T0 + 400 * DAY),
        **kw,
    )


MISSING = CookieReport(path=PATH, exists=False)
CORRUPT = CookieReport(path=PATH, exists=True, size=10, error="not a Netscape cookie file")


class Harness:
    """A core state and a clock; every call returns the effects of one event."""

    def __init__(self, *sources: SourceSettings, redis_up: bool | None = True) -> None:
        self.state = core.State.of([s.policy() for s in list(sources) or [settings()]])
        self.state.redis_up = redis_up
        self.now = T0

    @property
    def src(self) -> core.Source:
        return next(iter(self.state.sources.values()))

    def __call__(self, event: core.Event, at: float | None = None) -> list[core.Effect]:
        if at is not None:
            self.now = at
        return core.step(self.state, event, self.now)

    def file(self, report: CookieReport, at: float | None = None) -> list[core.Effect]:
        return self(FileInspected(self.src.name, report), at)

    def answer(self, enqueue: Enqueue, state: core.TriggerState, **kw: Any) -> list[core.Effect]:
        return self(RefreshAnswered(enqueue.source, enqueue.reason, enqueue.origin, state, **kw))

    def validated(self, ok: bool, reason: Reason | None = None, **kw: Any) -> list[core.Effect]:
        started = kw.pop("started_at", self.now)
        v = Validation(ok, reason, started, self.now, kw.pop("trigger", "schedule"), **kw)
        return self(ValidationFinished(self.src.name, v))


def of(effects: list[core.Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def enqueued(effects: list[core.Effect]) -> Enqueue:
    [e] = of(effects, Enqueue)
    return e


def counted(effects: list[core.Effect], metric: str) -> list[tuple[str, ...]]:
    return [c.labels for c in of(effects, Count) if c.metric == metric]


def job(job_id: str, outcome: str = "completed", *, at: float, created: float) -> Any:
    from cookie_supervisor.bull import FinishedJob

    return FinishedJob(job_id, "main", None, outcome, at, 1, None, created)  # type: ignore[arg-type]


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
    saved = state.snapshot(h.state, b"k" * 32)
    later = Harness(settings(rotate_after=7 * DAY))
    state.restore(later.state, saved)
    # The backend's yt-dlp rewrote the file just now: mtime says nothing about the session.
    fx = later.file(jar("B", mtime=T0 + 6 * DAY), at=T0 + 6 * DAY)
    assert later.src.session_since == T0 + DAY
    assert Arm("main", "rotation", T0 + 8 * DAY) in fx
    assert of(fx, ResetBackoff) == []  # B is not new to this source


# --- defect 5: owed refreshes survive a restart and are re-checked before they are paid -------


def test_defect5_owed_refresh_survives_restart_and_is_paid_once() -> None:
    h = Harness(redis_up=False)
    h.file(jar())
    fx = h(RefreshAsked("main", Reason.BOT_DETECTION, "api"))
    [answer] = of(fx, Answer)
    assert answer.state == "deferred" and "owes" in answer.message
    saved = state.snapshot(h.state, b"k" * 32)
    later = Harness(redis_up=None)
    state.restore(later.state, saved)
    later.file(jar())
    fx = later(QueueObserved({"main": None}))
    assert enqueued(fx) == Enqueue("main", Reason.BOT_DETECTION, "owed")
    assert of(later(QueueObserved({"main": None})), Enqueue) == []  # paid once


def test_defect5_owed_refresh_is_dropped_when_its_cause_is_gone() -> None:
    h = Harness(redis_up=False)
    h.file(jar())
    h.file(MISSING, at=T0 + 1)
    h(TimerFired("main", "grace"), at=T0 + 61)
    fx = h.file(MISSING)
    assert of(fx, Enqueue) == [] and h.src.owed is not None  # Redis down: owed, quietly
    assert h.src.owed.reason is Reason.MISSING_COOKIES
    h.file(jar(), at=T0 + 70)  # the file came back before Redis did
    fx = h(QueueObserved({"main": None}), at=T0 + 80)
    assert of(fx, Enqueue) == [] and h.src.owed is None


# --- defect 6: verification waits for a validation of the new session --------------------------


def _completed_refresh(h: Harness) -> None:
    h.file(jar("A"))
    ask = enqueued(h.validated(False, Reason.BOT_DETECTION))
    h.answer(ask, "enqueued", job_id="9")
    h(QueueObserved({"main": "9"}))


def test_defect6_validation_started_on_the_old_jar_does_not_judge_the_refresh() -> None:
    h = Harness()
    _completed_refresh(h)
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
    _completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    fx = h.file(jar("A", size=2100), at=T0 + 150)  # the backend's yt-dlp saved the old session
    assert of(fx, RunValidation) == []
    fx = h(TimerFired("main", "upload"), at=T0 + 700)
    assert counted(fx, "refresh_verifications_total") == [("main", "no_upload")]
    assert RecordOutcome("main", "9", False) in fx


def test_defect6_upload_before_the_job_reports_success_is_seen() -> None:
    h = Harness()
    _completed_refresh(h)
    fx = h.file(jar("B"), at=T0 + 90)  # the extractor uploads, then reports success
    assert RunValidation("main", "file") in fx
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    assert h.src.verifying is not None and h.src.verifying.session_at == T0 + 90
    fx = h.validated(True, started_at=T0 + 91)  # the validation the upload started
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]


# --- defect 8: history recovered at start is not counted ---------------------------------------


def test_defect8_recovered_history_counts_nothing_and_verifies_nothing() -> None:
    h = Harness(redis_up=None)
    h.file(jar())
    old = tuple(job(str(i), at=T0 - DAY + i, created=T0 - DAY) for i in range(5))
    fx = h(QueueObserved({"main": None}, old))
    assert counted(fx, "refresh_jobs_finished_total") == [] and h.src.verifying is None
    assert len(h.src.history) == 5
    fx = h(QueueObserved({"main": None}, (job("6", at=T0 + 1, created=T0),)), at=T0 + 1)
    assert counted(fx, "refresh_jobs_finished_total") == [("main", "completed")]


# --- defect 9: a pending job that vanished ----------------------------------------------------


def test_defect9_vanished_pending_job_is_counted_and_the_need_asked_again() -> None:
    h = Harness()
    h.file(jar())
    ask = enqueued(h.validated(False, Reason.COOKIES_ROTATED))
    h.answer(ask, "enqueued", job_id="4")
    fx = h(QueueObserved({"main": None}, vanished=frozenset({"4"})))
    assert counted(fx, "pending_jobs_lost_total") == [("main",)]
    assert enqueued(fx).reason is Reason.COOKIES_ROTATED


def test_defect9_vanished_manual_job_is_asked_again() -> None:
    h = Harness()
    h.file(jar())
    ask = enqueued(h(RefreshAsked("main", Reason.MANUAL, "cli")))
    h.answer(ask, "enqueued", job_id="4")
    fx = h(QueueObserved({"main": None}, vanished=frozenset({"4"})))
    assert enqueued(fx).reason is Reason.MANUAL


# --- defect 10: bounded memory, superseded verification, unreadable is its own reason --------


def test_defect10_requested_stays_bounded() -> None:
    h = Harness()
    h.file(jar())
    for i in range(200):
        h(RefreshAnswered("main", Reason.MANUAL, "cli", "enqueued", str(i)))
        h(QueueObserved({"main": None}, (job(str(i), "failed", at=T0 + i, created=T0),)), at=T0 + i)
    assert len(h.src.requested) <= core.REQUESTED_KEPT


def test_defect10_newer_verification_supersedes_an_unfinished_one() -> None:
    h = Harness()
    h.file(jar())
    h(QueueObserved({"main": None}))
    h(QueueObserved({"main": None}, (job("1", at=T0 + 1, created=T0),)), at=T0 + 1)
    fx = h(QueueObserved({"main": None}, (job("2", at=T0 + 2, created=T0),)), at=T0 + 2)
    assert counted(fx, "refresh_verifications_total") == [("main", "superseded")]
    assert h.src.verifying is not None and h.src.verifying.job_id == "2"


@pytest.mark.parametrize("reason", [Reason.UNREADABLE, Reason.NOT_A_FILE])
def test_defect10_unreadable_or_not_a_file_never_asks(reason: Reason) -> None:
    h = Harness()
    h.file(jar())
    bad = CookieReport(path=PATH, exists=True, error="x")
    bad = replace(bad, error="permission denied" if reason is Reason.UNREADABLE else "a directory")
    fx = h.file(_with_problem(bad, reason), at=T0 + 1)
    fx += h(TimerFired("main", "grace"), at=T0 + 3600)
    fx += h.file(_with_problem(bad, reason))
    assert of(fx, Enqueue) == [] and h.src.problem is reason


def _with_problem(report: CookieReport, reason: Reason) -> CookieReport:
    class Fixed(CookieReport):
        def problem(self) -> Reason | None:
            return reason

    return Fixed(**{f: getattr(report, f) for f in report.__dataclass_fields__})


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


# --- requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "error", "state"),
    [
        (Reason.NETWORK_ERROR, "Connection refused", "ignored"),
        (Reason.RATE_LIMITED, "try again later", "ignored"),
        (Reason.FORBIDDEN, "HTTP Error 403: Forbidden", "validating"),
        (
            Reason.AUTH_REQUIRED,
            "Private video. Sign in if you've been granted access",
            "validating",
        ),
        (Reason.AUTH_REQUIRED, "Login details are needed to download this content", None),
        (Reason.BOT_DETECTION, "Sign in to confirm you’re not a bot", None),
        (Reason.COOKIES_ROTATED, "cookies are no longer valid", None),
    ],
)
def test_reports_ask_only_on_evidence(reason: Reason, error: str, state: str | None) -> None:
    h = Harness()
    h.file(jar())
    fx = h(RefreshAsked("main", reason, "api", error=error))
    if state is None:
        assert enqueued(fx).reason is reason
        fx = h.answer(enqueued(fx), "enqueued", job_id="1")
        state = "enqueued"
    [answer] = of(fx, Answer)
    assert answer.state == state
    assert ("main", reason.value, state) in counted(fx, "failure_reports_total")
    assert (of(fx, RunValidation) != []) == (state == "validating")


def test_ambiguous_report_runs_at_most_one_validation() -> None:
    h = Harness()
    h.file(jar())
    fx = []
    for _ in range(50):
        fx += h(RefreshAsked("main", Reason.FORBIDDEN, "api", error="HTTP Error 403"))
    assert len(of(fx, RunValidation)) == 1


def test_force_from_a_person_skips_validation_and_trigger_on() -> None:
    h = Harness(settings(trigger_on=["missing_cookies"]))
    h.file(jar())
    fx = h(RefreshAsked("main", Reason.FORBIDDEN, "api", force=True))
    assert enqueued(fx).force is True
    fx = h(RefreshAsked("main", Reason.BOT_DETECTION, "api"))
    assert of(fx, Answer)[0].state == "ignored"


def test_deferred_triggers_log_once_and_count_each() -> None:
    h = Harness(redis_up=False)
    h.file(jar())
    fx = []
    for _ in range(1000):
        fx += h(RefreshAsked("main", Reason.MANUAL, "cli"))
    assert len(of(fx, core.Log)) == 1
    assert len(counted(fx, "refresh_requests_total")) == 1000


def test_coalesced_trigger_is_a_count_not_a_log_line() -> None:
    h = Harness()
    h.file(jar())
    ask = enqueued(h(RefreshAsked("main", Reason.MANUAL, "cli")))
    h.answer(ask, "enqueued", job_id="1")
    fx = h.answer(ask, "coalesced", job_id="1")
    assert of(fx, core.Log) == [] and counted(fx, "refresh_requests_total")


def test_redis_down_is_logged_once() -> None:
    h = Harness()
    assert len(of(h(RedisDown("connection refused")), core.Log)) == 1
    assert h(RedisDown("connection refused")) == []
    assert h.state.redis_up is False and h.state.counts is None


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
    _completed_refresh(h)
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


@pytest.mark.parametrize(
    ("media", "account_ok", "asked", "expected"),
    [
        (None, True, True, False),
        (Reason.NETWORK_ERROR, None, True, False),
        (Reason.BOT_DETECTION, None, False, False),
        (Reason.BOT_DETECTION, True, False, True),
        (Reason.FORBIDDEN, True, False, True),
        (Reason.BOT_DETECTION, None, True, True),
        (Reason.PO_TOKEN_REQUIRED, None, False, True),
        (Reason.COOKIES_ROTATED, True, True, False),
    ],
)
def test_wants_diagnosis(
    media: Reason | None, account_ok: bool | None, asked: bool, expected: bool
) -> None:
    assert core.wants_diagnosis(media, account_ok, asked) is expected


@pytest.mark.parametrize(
    ("media", "account", "ran", "without", "verdict", "diagnosis"),
    [
        (None, None, True, False, None, None),
        (None, Reason.COOKIES_ROTATED, True, False, Reason.COOKIES_ROTATED, None),
        (Reason.BOT_DETECTION, None, False, False, Reason.BOT_DETECTION, None),
        (
            Reason.BOT_DETECTION,
            None,
            True,
            Reason.BOT_DETECTION,
            Reason.IP_FLAGGED,
            Reason.IP_FLAGGED,
        ),
        (Reason.FORBIDDEN, None, True, None, Reason.ACCOUNT_RESTRICTED, Reason.ACCOUNT_RESTRICTED),
    ],
)
def test_conclude(
    media: Reason | None,
    account: Reason | None,
    ran: bool,
    without: Reason | bool | None,
    verdict: Reason | None,
    diagnosis: Reason | None,
) -> None:
    assert core.conclude(media, account, ran, without) == (verdict, diagnosis)


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


def test_expiring_and_missing_are_announced_once_per_spell() -> None:
    h = Harness(settings(renew_before=2 * DAY, rotate_after=0))
    h.file(jar(expires=T0 + 3 * DAY))
    fx = h(TimerFired("main", "rotation"), at=T0 + DAY)
    fx += h(TimerFired("main", "rotation"), at=T0 + DAY + 60)
    assert [n.event for n in of(fx, Notify)] == ["cookies_expiring"]
    h.file(MISSING, at=T0 + DAY + 100)
    fx = h(TimerFired("main", "grace"), at=T0 + DAY + 200) + h(TimerFired("main", "grace"))
    assert [n.event for n in of(fx, Notify)] == ["file_missing"]


def test_job_end_notifications_share_an_id_key_across_daemons() -> None:
    a, b = Harness(), Harness()
    for h in (a, b):
        h.file(jar())
        h(QueueObserved({"main": None}))
    ends = [
        of(h(QueueObserved({"main": None}, (job("5", "failed", at=T0, created=T0),))), Notify)
        for h in (a, b)
    ]
    # the id and the job's creation: after a queue reset job ids start again at 1
    assert ends[0] == ends[1] and ends[0][0].key == f"5@{round(T0 * 1000)}"


def test_a_known_pending_job_answers_coalesced_without_asking_redis() -> None:
    h = Harness()
    h.file(jar())
    h(QueueObserved({"main": "12"}))
    fx = h(RefreshAsked("main", Reason.BOT_DETECTION, "api", error="not a bot"))
    assert of(fx, Enqueue) == []
    [answer] = of(fx, Answer)
    assert (answer.state, answer.job_id) == ("coalesced", "12")
    assert counted(fx, "failure_reports_total") == [("main", "bot_detection", "coalesced")]
    h(RedisDown("gone"))
    [answer] = of(h(RefreshAsked("main", Reason.MANUAL, "cli")), Answer)
    assert answer.state == "deferred"  # without Redis the pending job is not known to stand


def test_force_past_the_backoff_says_so() -> None:
    h = Harness()
    h.file(jar())
    h(core.BackoffObserved("main", 2, T0 + 3600))
    ask = enqueued(h(RefreshAsked("main", Reason.MANUAL, "cli", force=True)))
    assert ask.force is True
    fx = h.answer(ask, "enqueued", job_id="3", force=True)
    [answer] = of(fx, Answer)
    # The message stays the documented one; `forced` and the log line say what force did.
    assert answer.message == "Cookie refresh job triggered successfully" and answer.forced
    [line] = [x for x in of(fx, core.Log) if x.message == "refresh enqueued"]
    assert line.fields["forced_past_backoff"] is True
    h(core.BackoffObserved("main", 0, None))
    fx = h.answer(ask, "enqueued", job_id="4", force=True)
    [answer] = of(fx, Answer)
    assert answer.forced
    [line] = [x for x in of(fx, core.Log) if x.message == "refresh enqueued"]
    assert line.fields["forced_past_backoff"] is None


def test_a_trigger_without_error_is_a_person_asking_whatever_the_word() -> None:
    """The original documentation's bodies (`manual_trigger`, `test`) and any other word."""
    for word in ("manual_trigger", "test", "network_error", "bot_detection", "x"):
        assert core.resolve_reason(word, None) is Reason.MANUAL
    h = Harness(settings(trigger_on=["missing_cookies"]))
    h.file(jar())
    reason = core.resolve_reason("test", None)
    ask = enqueued(h(RefreshAsked("main", reason, "api", detail="test")))
    assert (ask.reason, ask.detail) == (Reason.MANUAL, "test")
    [answer] = of(h.answer(ask, "enqueued", job_id="1"), Answer)
    assert answer.triggered and answer.message == "Cookie refresh job triggered successfully"
    assert not answer.forced


def test_a_report_with_error_is_classified() -> None:
    assert core.resolve_reason("download_failed", "Sign in to confirm you're not a bot") is (
        Reason.BOT_DETECTION
    )
    assert core.resolve_reason("bot_detection", "") is Reason.BOT_DETECTION
    assert core.resolve_reason("download_failed", "Connection refused") is Reason.NETWORK_ERROR
    assert core.resolve_reason("x", "nothing we know") is Reason.OTHER
    h = Harness()
    h.file(jar())
    [answer] = of(h(RefreshAsked("main", Reason.NETWORK_ERROR, "api", error="refused")), Answer)
    assert (answer.state, answer.triggered) == ("ignored", False)


def test_force_makes_a_job_whatever_the_reason() -> None:
    h = Harness()
    h.file(jar())
    fx = h(RefreshAsked("main", Reason.NETWORK_ERROR, "api", force=True, error="refused"))
    ask = enqueued(fx)
    assert ask.force and ask.reason is Reason.MANUAL


@pytest.mark.parametrize(
    ("state", "triggered"),
    [
        ("enqueued", True),
        ("coalesced", True),
        ("deferred", True),
        ("cooldown", False),
        ("backoff", False),
        ("validating", False),
        ("ignored", False),
    ],
)
def test_triggered_means_a_job_was_made_is_pending_or_is_owed(
    state: core.TriggerState, triggered: bool
) -> None:
    assert Answer(state, "main", Reason.MANUAL, "").triggered is triggered


@pytest.mark.parametrize(
    ("ok", "reason", "expected"),
    [
        (True, None, True),
        (False, Reason.BOT_DETECTION, True),
        (False, Reason.COOKIES_ROTATED, True),
        (False, Reason.UNAVAILABLE, False),  # the video is gone: try the next URL
        (False, Reason.NETWORK_ERROR, False),
        (False, Reason.TIMEOUT, False),
    ],
)
def test_which_probe_settles_a_validation(ok: bool, reason: Reason | None, expected: bool) -> None:
    assert core.settles(ok, reason) is expected


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (None, True),  # the media passed: is the session honoured, or a guest's pass?
        (Reason.BOT_DETECTION, True),
        (Reason.NETWORK_ERROR, False),  # the account check would fail the same way
        (Reason.RATE_LIMITED, False),
    ],
)
def test_when_the_account_check_runs(media: Reason | None, expected: bool) -> None:
    assert core.wants_account_check(media) is expected


def test_trigger_on_filters_each_piece_of_evidence_before_the_strongest_wins() -> None:
    h = Harness(settings(trigger_on=["scheduled_rotation"], rotate_after=DAY, renew_before=0))
    h.file(jar(mtime=T0))
    # a bot check this source does not act on, and it outranks a rotation
    assert of(h.validated(False, Reason.BOT_DETECTION), Enqueue) == []
    fx = h(TimerFired("main", "rotation"), at=T0 + DAY)
    assert enqueued(fx).reason is Reason.SCHEDULED_ROTATION


def test_an_unchanged_rotation_date_is_not_armed_again() -> None:
    h = Harness(settings(rotate_after=7 * DAY))
    assert Arm("main", "rotation", T0 + 7 * DAY) in h.file(jar(mtime=T0))
    for i in range(1, 5):  # the backend's yt-dlp rewrites the same session
        fx = h.file(jar(size=2000 + i, mtime=T0 + i), at=T0 + i)
        assert of(fx, Arm) == [] and of(fx, Cancel) == []
    assert Cancel("main", "rotation") in h.file(jar(None), at=T0 + 10)


def test_a_validation_the_daemon_could_not_read_for_is_no_verdict() -> None:
    h = Harness()
    h.file(jar())
    h.validated(True)
    fx = h.validated(False, Reason.OTHER, read_error="EMFILE", offline=True)
    assert fx == [] and h.src.last_validation is not None and h.src.last_validation.ok


# --- issue 16 D2: a standing diagnosis is honoured until something newer contradicts it ---------


def _diagnosed(h: Harness, diagnosis: Reason = Reason.IP_FLAGGED) -> list[core.Effect]:
    return h.validated(
        False, diagnosis, media_reason=Reason.BOT_DETECTION, account_ok=True, diagnosis=diagnosis
    )


def test_d2a_a_run_the_bot_wall_also_blocks_keeps_the_diagnosis() -> None:
    """The bot wall hits the account check too: that run cannot tell, so the diagnosis stands,
    and the next validation probes without cookies again to confirm or drop it."""
    h = Harness()
    h.file(jar())
    fx = _diagnosed(h)
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
    _diagnosed(h)
    fx = h.validated(ok, reason, offline=offline)
    assert (h.src.diagnosis is Reason.IP_FLAGGED) is stands
    assert (ShareDiagnosis("main", None) in fx) is not stands


def test_d2b_backend_reports_honour_the_standing_diagnosis() -> None:
    h = Harness()
    h.file(jar())
    _diagnosed(h)
    fx: list[core.Effect] = []
    for _ in range(13):
        fx += h(RefreshAsked("main", Reason.BOT_DETECTION, "api", error="not a bot"))
        fx += h(RefreshAsked("main", Reason.FORBIDDEN, "report", error="HTTP Error 403"))
    assert of(fx, Enqueue) == [] and of(fx, RunValidation) == []
    assert {a.state for a in of(fx, Answer)} == {"ignored"}
    assert "ip_flagged" in of(fx, Answer)[0].message
    # a report that the session is dead is newer evidence: checked, not believed, not ignored
    fx = h(RefreshAsked("main", Reason.COOKIES_ROTATED, "api", error="no longer valid"))
    assert of(fx, Answer)[0].state == "validating" and of(fx, Enqueue) == []
    # a person is never refused by a diagnosis
    assert enqueued(h(RefreshAsked("main", Reason.MANUAL, "cli", force=True))).force


def test_d2c_a_diagnosis_shared_through_redis_is_honoured() -> None:
    """A daemon without an account check cannot diagnose the address itself: a peer's
    diagnosis, read from Redis, stops its refreshes and makes its validations probe bare."""
    h = Harness(settings(account_check_url=""))
    h.file(jar())
    h(QueueObserved({"main": None}, diagnoses={"main": Reason.IP_FLAGGED}))
    fx = h.validated(False, Reason.BOT_DETECTION, media_reason=Reason.BOT_DETECTION)
    assert of(fx, Enqueue) == []
    plan = core.plan_validation(h.src)
    assert plan.account_url is None and plan.diagnose
    fx = h(QueueObserved({"main": None}, diagnoses={"main": None}))  # expired, or dropped
    assert enqueued(fx).reason is Reason.BOT_DETECTION  # the failed validation stands again


# --- issue 16 point 4: the validation pipeline is pure -----------------------------------------


def _said(kind: core.ProbeKind, url: str, reason: Reason | None) -> core.ProbeSaid:
    return core.ProbeSaid(kind, url, reason)


YT = "https://www.youtube.com/watch?v=x"
ACCOUNT = "https://www.youtube.com/playlist?list=LL"
YT2 = "https://www.youtube.com/watch?v=y"


@pytest.mark.parametrize(
    ("diagnose", "runs", "expected"),
    [
        # a removed first video lets the second speak; it passes; the account check follows
        (False, [("media", YT, Reason.UNAVAILABLE), ("media", YT2, None)], "account"),
        (False, [("media", YT, None), ("account", ACCOUNT, None)], None),
        # the wall on both: nothing more, unless a diagnosis stands
        (
            False,
            [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, "bot")],
            None,
        ),
        (
            True,
            [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, "bot")],
            "bare",
        ),
        (False, [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, None)], "bare"),
        (False, [("media", YT, Reason.NETWORK_ERROR), ("media", YT2, Reason.NETWORK_ERROR)], None),
    ],
)
def test_next_probe(diagnose: bool, runs: list[tuple[Any, str, Any]], expected: str | None) -> None:
    plan = core.ValidationPlan((YT, YT2), ACCOUNT, diagnose)
    said = tuple(_said(k, u, Reason.BOT_DETECTION if r == "bot" else r) for k, u, r in runs)
    found = core.next_probe(plan, said)
    assert (found.kind if found else None) == expected
    if found is not None and found.kind == "bare":
        assert found.url == YT


def test_a_whole_pipeline_run_concludes_ip_flagged() -> None:
    plan = core.ValidationPlan((YT,), ACCOUNT, False)
    answers = {"media": Reason.BOT_DETECTION, "account": None, "bare": Reason.BOT_DETECTION}
    said: tuple[core.ProbeSaid, ...] = ()
    while (run := core.next_probe(plan, said)) is not None:
        said += (_said(run.kind, run.url, answers[run.kind]),)
    assert [p.kind for p in said] == ["media", "account", "bare"]
    v = core.validation_of(said, T0, T0 + 3, "schedule")
    assert (v.reason, v.diagnosis, v.account_ok) == (Reason.IP_FLAGGED, Reason.IP_FLAGGED, True)


# --- issue 16 D7: finished jobs are judged by id and a record, never by a finishedOn cursor -----


def test_d7_a_job_from_a_worker_whose_clock_is_behind_is_booked() -> None:
    h = Harness()
    h.file(jar())
    h(QueueObserved({"main": None}))  # history: nothing
    fresh = job("1", "failed", at=T0 + 10, created=T0)
    skewed = job("2", "failed", at=T0 + 10 - 300, created=T0 + 5)  # ended later, stamped earlier
    fx = h(QueueObserved({"main": None}, (fresh,)), at=T0 + 10)
    fx += h(QueueObserved({"main": None}, (fresh, skewed)), at=T0 + 11)
    assert RecordOutcome("main", "1", False) in fx and RecordOutcome("main", "2", False) in fx
    assert counted(fx, "refresh_jobs_finished_total") == [("main", "failed")] * 2  # once each


def test_d7_verification_deadline_runs_from_when_the_daemon_saw_the_end() -> None:
    h = Harness(settings(upload_timeout=600))
    h.file(jar())
    h(QueueObserved({"main": None}))
    fx = h(QueueObserved({"main": None}, (job("1", at=T0 - 300, created=T0 - 310),)), at=T0)
    assert Arm("main", "upload", T0 + 600) in fx  # not T0 + 300 from a clock 5 min behind


def test_d7_the_record_keeps_only_what_redis_still_holds_and_tells_a_reused_id_apart() -> None:
    h = Harness()
    h.file(jar())
    h(QueueObserved({"main": None}))
    one = job("1", "failed", at=T0 + 1, created=T0)
    key = core.judged_key("1", T0 + 1)
    h(QueueObserved({"main": None}, (one,), window=frozenset({key})), at=T0 + 1)
    assert h.state.judged == {key}
    h(QueueObserved({"main": None}, window=frozenset()), at=T0 + 2)  # trimmed from Redis
    assert h.state.judged == set()
    reused = job("1", "failed", at=T0 + 50, created=T0 + 40)  # after a flush, ids start again
    fx = h(QueueObserved({"main": None}, (reused,)), at=T0 + 50)
    assert RecordOutcome("main", "1", False) in fx


def test_d7_the_record_survives_a_restart_and_books_what_ended_meanwhile() -> None:
    h = Harness()
    h.file(jar())
    old = job("1", "failed", at=T0 + 1, created=T0)
    h(QueueObserved({"main": None}, (old,)), at=T0 + 1)  # first look: history, not booked
    saved = state.snapshot(h.state, b"k" * 32)
    later = Harness(redis_up=None)
    state.restore(later.state, saved)
    later.file(jar())
    meanwhile = job("2", "failed", at=T0 + 100, created=T0 + 90)
    fx = later(QueueObserved({"main": None}, (old, meanwhile)), at=T0 + 200)
    assert of(fx, RecordOutcome) == [RecordOutcome("main", "2", False)]


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


def test_retry_and_verification_waits_are_monotonic_and_rotation_dates_are_wall() -> None:
    assert {"rotation"} == core.WALL_TIMERS
    s = core.State.of([settings(rotate_after=7 * DAY, upload_timeout=600).policy()])
    s.redis_up = True
    at = core.Now(mono=50.0, wall=T0)
    fx = core.step(s, FileInspected("main", jar(mtime=T0)), at)
    assert Arm("main", "rotation", T0 + 7 * DAY) in fx  # a date
    ask = enqueued(core.step(s, ValidationFinished("main", _failed(Reason.COOKIES_ROTATED)), at))
    fx = core.step(s, RefreshAnswered("main", ask.reason, ask.origin, "cooldown", "1", 30), at)
    assert Arm("main", "retry", 80.0) in fx  # an interval
    core.step(s, QueueObserved({"main": None}), at)
    fx = core.step(s, QueueObserved({"main": None}, (job("1", at=T0 - 300, created=T0),)), at)
    assert Arm("main", "upload", 650.0) in fx


def _failed(reason: Reason) -> Validation:
    return Validation(False, reason, T0, T0, "schedule")


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
    saved = state.snapshot(h.state, b"k" * 32)
    later = Harness(settings(upload_timeout=600), redis_up=None)
    state.restore(later.state, saved)
    later.file(jar("A"), at=T0 + 20)
    fx = later(QueueObserved({"main": None}, (done,)), at=T0 + 30)
    assert later.src.verifying is not None and later.src.verifying.job_id == "1"
    fx += later(TimerFired("main", "upload"), at=T0 + 30 + 600)
    assert RecordOutcome("main", "1", False) in fx  # no_upload: booked, not lost


# --- issue 16, D3 / N2 / D14 (verdicts): every job ends with one true verdict -------------------


def _uploaded(h: Harness, fp: str = "B") -> None:
    """Job 9 completed at T0 + 100 (deadline T0 + 700); its upload `fp` lands at T0 + 120."""
    _completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    h.file(jar(fp), at=T0 + 120)


def test_d3_a_verification_with_only_inconclusive_validations_ends_unverified() -> None:
    h = Harness(settings(upload_timeout=600))
    _uploaded(h)
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
    _uploaded(h)
    h.validated(False, Reason.RATE_LIMITED, started_at=T0 + 130)
    h(TimerFired("main", "upload"), at=T0 + 700)
    fx = h.validated(False, Reason.LOGGED_OUT, started_at=T0 + 800)
    assert enqueued(fx).reason is Reason.LOGGED_OUT


def test_d3_the_offline_missing_file_check_does_not_judge_a_refresh() -> None:
    h = Harness(settings(upload_timeout=600))
    _uploaded(h)
    # a periodic validation caught the jar missing (an scp upload, a rename) after the upload
    fx = h.validated(False, Reason.MISSING_COOKIES, offline=True, started_at=T0 + 130)
    assert counted(fx, "refresh_verifications_total") == [] and of(fx, RecordOutcome) == []
    fx = h.validated(True, started_at=T0 + 140)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "9", True) in fx


def test_n2_an_offline_only_daemon_neither_verifies_a_refresh_nor_resets_the_backoff() -> None:
    h = Harness(settings(upload_timeout=600, validation_urls=[]))
    _completed_refresh(h)
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
    _completed_refresh(h)
    fx = h.file(jar("A", size=2100), at=T0 + 90)  # the extractor uploads the same login
    assert of(fx, RunValidation) == []  # a rewrite of the same session: nothing new yet
    fx = h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    assert RunValidation("main", "verification") in fx  # it was the job's upload
    fx = h.validated(True, started_at=T0 + 101)
    assert counted(fx, "refresh_verifications_total") == [("main", "verified")]
    assert RecordOutcome("main", "9", True) in fx  # the session's first reset


def test_d14_same_session_refreshes_reset_the_count_once_then_keep_counting() -> None:
    h = Harness(settings(upload_timeout=600))
    _completed_refresh(h)
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
