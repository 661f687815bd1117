"""The core's rules that the simulated world (tests/sim) found broken this session, as tables.

Each test names its defect and the seed that found it (tests/sim/regression.py replays the
world: `python -m tests.sim --replay SEED --keep ...`). Time runs on `core.Now(mono, wall)`:
the monotonic clock orders what this run saw, the wall clock dates what other hosts wrote.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cookie_supervisor import core, memory
from cookie_supervisor.bull import FinishedJob
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.model import CookieReport
from cookie_supervisor.verdict import conclude

E = TypeVar("E")
T0 = 1_800_000_000.0
M0 = 5_000.0  # the monotonic clock's reading at T0 (its origin is the boot, not the epoch)
PATH = Path("/srv/cookies.txt")


def settings(**kw: Any) -> SourceSettings:
    return SourceSettings(name="main", cookies_file=PATH, **kw)


def jar(fp: str | None = "A", *, mtime: float = T0, size: int = 2000) -> CookieReport:
    return CookieReport(
        path=PATH,
        exists=True,
        size=size,
        mtime=mtime,
        mode=0o600,
        cookies=20,
        login_cookies=("LOGIN_INFO", "SAPISID") if fp else ("SAPISID",),
        logged_in=fp is not None,
        fingerprint=fp,
        login_expires_at=T0 + 400 * 86400,
    )


def finished(job_id: str, *, at: float, created: float, outcome: str = "completed") -> Any:
    return FinishedJob(job_id, "main", None, outcome, at, 1, None, created)  # type: ignore[arg-type]


class World:
    """One daemon's core on two clocks: `t` seconds after T0 on both, unless the wall is moved."""

    def __init__(self, cfg: SourceSettings | None = None) -> None:
        self.state = core.State.of([(cfg or settings()).policy()])
        self.state.redis_up = True
        self.t = 0.0
        self.wall_offset = 0.0

    @property
    def src(self) -> core.Source:
        return self.state.sources["main"]

    def now(self) -> core.Now:
        return core.Now(mono=M0 + self.t, wall=T0 + self.t + self.wall_offset)

    def __call__(self, event: core.Event, at: float | None = None) -> list[core.Effect]:
        if at is not None:
            self.t = at
        return core.step(self.state, event, self.now())

    def file(self, report: CookieReport, at: float) -> list[core.Effect]:
        return self(core.FileInspected("main", report), at)

    def poll(
        self, pending: str | None, at: float, *done: FinishedJob, **kw: Any
    ) -> list[core.Effect]:
        return self(core.QueueObserved({"main": pending}, tuple(done), **kw), at)

    def validated(
        self, ok: bool, reason: Reason | None = None, *, began: float, at: float, **kw: Any
    ) -> list[core.Effect]:
        """A validation that began at `began` and ended at `at` (both on this world's time)."""
        self.t = at
        v = core.Validation(
            ok,
            reason,
            T0 + began + self.wall_offset,
            T0 + at + self.wall_offset,
            kw.pop("trigger", "schedule"),
            took=at - began,
            **kw,
        )
        return self(core.ValidationFinished("main", v))

    def answered(self, state: core.TriggerState, enqueue: core.Enqueue, **kw: Any) -> Any:
        return self(core.RefreshAnswered("main", enqueue.reason, enqueue.origin, state, **kw))


def of(effects: list[core.Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def verdicts(effects: list[core.Effect]) -> list[str]:
    return [
        c.labels[1] for c in of(effects, core.Count) if c.metric == "refresh_verifications_total"
    ]


# --- N7: an upload that kept the session, judged by nobody, renewed nothing -------------------


def test_n7_a_same_session_refresh_nobody_could_judge_counts_as_unsuccessful() -> None:
    """Seed 1001308: YouTube rate-limits every validation; the rotation's refresh re-uploads the
    same session. `unverified` blames nothing, but an upload of the same session renewed
    nothing: it is booked unsuccessful, so a due rotation the extractor cannot end backs off."""
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    w.poll("9", 10)  # a job (the rotation) runs
    w.file(jar("A", size=2100, mtime=T0 + 50), 50)  # the extractor rewrites the jar: same session
    fx = w.poll(None, 52, finished("9", at=T0 + 52, created=T0 + 10))
    assert of(fx, core.RunValidation)  # the same-session upload is judged by a validation
    w.validated(False, Reason.RATE_LIMITED, began=53, at=55, trigger="verification")
    fx = w(core.TimerFired("main", "upload"), 52 + 120)
    assert verdicts(fx) == ["unverified"]
    assert of(fx, core.RecordOutcome) == [core.RecordOutcome("main", "9", False)]


def test_n7_a_new_session_nobody_could_judge_still_counts_neither_way() -> None:
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    w.poll("9", 10)
    w.file(jar("B", mtime=T0 + 50), 50)  # a new session
    w.poll(None, 52, finished("9", at=T0 + 52, created=T0 + 10))
    w.validated(False, Reason.RATE_LIMITED, began=53, at=55, trigger="verification")
    fx = w(core.TimerFired("main", "upload"), 52 + 120)
    assert verdicts(fx) == ["unverified"] and of(fx, core.RecordOutcome) == []


# --- N8: the jar's mtime is another host's clock ------------------------------------------------


def test_n8_a_rewrite_seen_just_after_the_end_is_the_jobs_upload_whatever_its_mtime() -> None:
    """Seed 1000272: the jar is written on a host an hour ahead; the daemon sees the job end,
    then 0.3 s later the rewrite of the same session: the job's upload, not `no_upload`."""
    w = World(settings(upload_timeout=120))
    w.file(jar(None, size=700), 0)  # a logged-out jar
    w.poll("9", 10)
    w.poll(None, 60, finished("9", at=T0 + 60, created=T0 + 10))
    fx = w.file(jar(None, size=700, mtime=T0 + 3600 + 59.8), 60.3)
    assert w.src.verifying is not None and w.src.verifying.same_session
    assert of(fx, core.RunValidation)


def test_n8_a_rewrite_long_after_the_end_with_a_later_mtime_is_the_backends() -> None:
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    w.poll("9", 10)
    w.poll(None, 60, finished("9", at=T0 + 60, created=T0 + 10))
    w.file(jar("A", size=2100, mtime=T0 + 90), 90)  # the backend's yt-dlp, 30 s later
    assert w.src.verifying is not None and w.src.verifying.session_at is None
    fx = w(core.TimerFired("main", "upload"), 60 + 120)
    assert verdicts(fx) == ["no_upload"]


# --- N9: a diagnosis nobody re-checked answers every report --------------------------------


def _diagnosed(w: World) -> None:
    w.file(jar("A"), 0)
    w.validated(False, Reason.PO_TOKEN_REQUIRED, began=1, at=5, diagnosis=Reason.PO_TOKEN_REQUIRED)
    assert w.src.diagnosis is Reason.PO_TOKEN_REQUIRED


def test_n9_a_report_within_the_recheck_window_is_answered_by_the_diagnosis() -> None:
    w = World(settings(validate_every=0))
    _diagnosed(w)
    report = core.RefreshAsked("main", Reason.BOT_DETECTION, "report", False, "Sign in")
    fx = w(report, 5 + core.DIAGNOSIS_RECHECK - 1)
    assert of(fx, core.RunValidation) == [] and of(fx, core.Enqueue) == []
    assert [a.state for a in of(fx, core.Answer)] == ["ignored"]


def test_n9_a_report_after_the_window_gets_a_validation_that_rechecks_it() -> None:
    """Seed 1000084: a source that validates only on demand kept po_token_required a day after
    YouTube stopped asking for it, and ignored every report of a dead session."""
    w = World(settings(validate_every=0))
    _diagnosed(w)
    report = core.RefreshAsked("main", Reason.BOT_DETECTION, "report", False, "Sign in")
    fx = w(report, 5 + core.DIAGNOSIS_RECHECK)
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "report", True)]
    assert [a.state for a in of(fx, core.Answer)] == ["validating"]
    # the cookie-less probe works now: the session is what fails, and the diagnosis goes
    fx = w.validated(False, Reason.LOGGED_OUT, began=700, at=705, trigger="report")
    assert w.src.diagnosis is None
    assert [e.reason for e in of(fx, core.Enqueue)] == [Reason.LOGGED_OUT]


def test_n9_a_restored_diagnosis_is_rechecked_by_the_first_report() -> None:
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    w.src.diagnosed = Reason.IP_FLAGGED  # from the state file: never confirmed by this run
    report = core.RefreshAsked("main", Reason.BOT_DETECTION, "report", False, "Sign in")
    fx = w(report, 10)
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "report", True)]


# --- N10 / N12: owed refreshes when Redis comes back ----------------------------------------


def _owed_during_outage(w: World, ask: core.Event) -> None:
    w.file(jar("A"), 0)
    w(core.RedisDown("connection refused"), 10)
    w(ask, 20)
    assert w.src.owed is not None


def test_n10_an_owed_persons_request_is_asked_even_with_a_job_pending() -> None:
    """Seed 1000055: Redis comes back with a peer's job pending; the person's request was
    dropped unanswered. It is asked: Redis answers `coalesced` with that job."""
    w = World()
    _owed_during_outage(w, core.RefreshAsked("main", Reason.MANUAL, "cli", False))
    fx = w.poll("12", 100)
    assert [(e.reason, e.origin) for e in of(fx, core.Enqueue)] == [(Reason.MANUAL, "owed")]
    assert w.src.owed is None


def test_n10_an_owed_automatic_refresh_with_a_job_pending_is_dropped() -> None:
    w = World()
    _owed_during_outage(w, core.RefreshAsked("main", Reason.COOKIES_ROTATED, "report", False))
    fx = w.poll("12", 100)
    assert of(fx, core.Enqueue) == [] and w.src.owed is None


def test_n12_a_refresh_owed_on_a_failed_validation_validates_again_first() -> None:
    """Seed 1000999: a validation failed while Redis was down; when Redis came back minutes
    later, the owed refresh was paid on that old failure for a jar that was healthy again."""
    w = World()
    w.file(jar("A"), 0)
    w(core.RedisDown("connection refused"), 10)
    w.validated(False, Reason.BOT_DETECTION, began=20, at=25)
    assert w.src.owed is not None and w.src.owed.origin == "validation"
    fx = w.poll(None, 300)
    assert of(fx, core.Enqueue) == []
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "retry", False)]
    fx = w.validated(True, began=301, at=305, trigger="retry")
    assert of(fx, core.Enqueue) == []


def test_n12_a_backend_report_owed_is_still_paid_as_asked() -> None:
    w = World()
    _owed_during_outage(w, core.RefreshAsked("main", Reason.COOKIES_ROTATED, "report", False))
    fx = w.poll(None, 300)
    assert [e.origin for e in of(fx, core.Enqueue)] == ["owed"]


# --- D13: a validation in flight when the upload lands --------------------------------------


def test_d13_a_validation_begun_on_the_old_jar_is_followed_by_one_on_the_new() -> None:
    """Seed 1000312: a scheduled validation was running when the refresh's session landed (the
    file's own validation was skipped: one in flight); it judged the old session and nothing
    ever judged the new one: `unverified`, then a second login on the old failure."""
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    w.poll("9", 10)
    fx = w(core.TimerFired("main", "validate"), 40)
    assert of(fx, core.RunValidation)
    w.file(jar("B", mtime=T0 + 41), 41)  # the upload lands mid-run: no second validation
    w.poll(None, 42, finished("9", at=T0 + 42, created=T0 + 10))
    fx = w.validated(False, Reason.COOKIES_ROTATED, began=40, at=44)  # about session A
    assert verdicts(fx) == [] and of(fx, core.Enqueue) == []
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "verification", False)]
    fx = w.validated(True, began=44, at=48, trigger="verification")
    assert verdicts(fx) == ["verified"]


def test_d13_a_wall_clock_step_does_not_make_every_validation_older_than_the_session() -> None:
    w = World()
    w.file(jar("A"), 0)
    w.file(jar("B"), 10)  # a new session, first seen on the wall clock at T0 + 10
    w.wall_offset = -3600.0  # stepped back an hour: every later start looks older than B
    fx = w.validated(False, Reason.COOKIES_ROTATED, began=20, at=25)
    assert of(fx, core.RunValidation) == []  # began after B on mono: no loop of validations


# --- N14: a diagnosis this daemon holds stays shared while its runs cannot tell -------------


def test_n14_a_run_that_cannot_tell_keeps_the_shared_diagnosis_alive() -> None:
    """Seed 1003003: the daemon that diagnosed ip_flagged met only rate-limited runs for hours;
    it kept the diagnosis, but the shared copy expired (three periods) and a peer validating on
    demand asked its due rotation behind the flagged address (P1)."""
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.validated(False, Reason.IP_FLAGGED, began=1, at=5, diagnosis=Reason.IP_FLAGGED)
    fx = w.validated(False, Reason.RATE_LIMITED, began=1800, at=1803)
    ttl = core.diagnosis_ttl(w.src.settings)
    assert of(fx, core.ShareDiagnosis) == [core.ShareDiagnosis("main", Reason.IP_FLAGGED, ttl)]
    assert w.src.diagnosis is Reason.IP_FLAGGED


def test_n14_a_peers_diagnosis_is_not_shared_again_by_a_daemon_that_only_read_it() -> None:
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.poll(None, 1, diagnoses={"main": Reason.IP_FLAGGED})
    fx = w.validated(False, Reason.RATE_LIMITED, began=1800, at=1803)
    assert of(fx, core.ShareDiagnosis) == []


# --- N3: a FLUSHALL (or Redis back empty) erases the shared diagnosis ------------------------


def test_n3_a_new_epoch_makes_the_holder_share_its_diagnosis_again() -> None:
    """Seed 1000951 (N3b): Redis came back empty and the shared ip_flagged with it; a peer that
    never diagnoses enqueued the backend's bot-check report (P1). The holder sees the new epoch
    and shares its diagnosis again at once."""
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={"main": None})
    w.validated(False, Reason.IP_FLAGGED, began=2, at=5, diagnosis=Reason.IP_FLAGGED)
    w.poll(None, 7, epoch="e1", diagnoses={"main": Reason.IP_FLAGGED})
    fx = w.poll(None, 9, epoch="e2", diagnoses={"main": None})
    ttl = core.diagnosis_ttl(w.src.settings)
    assert of(fx, core.ShareDiagnosis) == [core.ShareDiagnosis("main", Reason.IP_FLAGGED, ttl)]


def test_n3_a_deliberate_delete_in_the_same_epoch_is_not_undone() -> None:
    """A peer's validation contradicted the diagnosis and deleted it: same epoch, so the holder
    does not share it again on sight (its own next run confirms or drops it)."""
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={"main": None})
    w.validated(False, Reason.IP_FLAGGED, began=2, at=5, diagnosis=Reason.IP_FLAGGED)
    w.poll(None, 7, epoch="e1", diagnoses={"main": Reason.IP_FLAGGED})
    assert of(w.poll(None, 9, epoch="e1", diagnoses={"main": None}), core.ShareDiagnosis) == []


def test_n3_a_share_lost_while_redis_was_down_is_made_again_when_it_is_back() -> None:
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={"main": None})
    w(core.RedisDown("refused"), 2)
    w.validated(False, Reason.IP_FLAGGED, began=2, at=5, diagnosis=Reason.IP_FLAGGED)
    fx = w.poll(None, 9, epoch="e1", diagnoses={"main": None})
    assert [e.diagnosis for e in of(fx, core.ShareDiagnosis)] == [Reason.IP_FLAGGED]


def test_n3_a_peer_holds_a_shared_diagnosis_that_vanished_with_redis_data() -> None:
    """Seed 120 (N3): a peer validating on demand learned account_restricted; a FLUSHALL erased
    it and the peer asked its due rotation at once. It holds the diagnosis `SHARED_HOLD` after a
    new epoch (the holder shares it again meanwhile); a delete within one epoch drops it."""
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={"main": Reason.ACCOUNT_RESTRICTED})
    w.poll(None, 3, epoch="e2", diagnoses={"main": None})
    assert w.src.diagnosis is Reason.ACCOUNT_RESTRICTED
    fx = w.poll(None, 3 + core.SHARED_HOLD - 1, epoch="e2", diagnoses={"main": None})
    assert w.src.diagnosis is Reason.ACCOUNT_RESTRICTED and of(fx, core.ShareDiagnosis) == []
    w.poll(None, 3 + core.SHARED_HOLD, epoch="e2", diagnoses={"main": None})
    assert w.src.diagnosis is None
    # within one epoch, a delete is a delete
    w.poll(None, 4000, epoch="e2", diagnoses={"main": Reason.ACCOUNT_RESTRICTED})
    w.poll(None, 4002, epoch="e2", diagnoses={"main": None})
    assert w.src.diagnosis is None


# --- N15: the backend writes an old jar back over a session that failed -----------------------


def test_n15_an_old_session_written_back_after_a_failure_is_validated_before_a_login() -> None:
    """Seed 1006904: session B failed (logged_out by the account check) just as the backend
    wrote the old jar (session A, seen before, still honoured) back; the failure, about B,
    stood as evidence and paid a login for a healthy jar once Redis was back (P5)."""
    w = World()
    w.file(jar("A"), 0)
    w.file(jar("B", mtime=T0 + 10), 10)
    w.validated(True, began=11, at=14, trigger="file")
    w(core.RedisDown("refused"), 20)
    w(core.TimerFired("main", "validate"), 40)
    w.file(jar("A", mtime=T0 + 45), 45)  # the old jar back, mid-run: one in flight
    fx = w.validated(False, Reason.LOGGED_OUT, began=40, at=46, account_ok=False)  # about B
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "file", False)]
    fx = w.validated(True, began=46, at=50, trigger="file")
    fx += w.poll(None, 60)
    assert of(fx, core.Enqueue) == [] and core.need(w.src, w.now()) is None


def test_n15_an_old_session_seen_after_the_failure_is_validated_too() -> None:
    w = World()
    w.file(jar("A"), 0)
    w.file(jar("B", mtime=T0 + 10), 10)
    w(core.RedisDown("refused"), 20)
    w.validated(False, Reason.LOGGED_OUT, began=40, at=44, account_ok=False)
    fx = w.file(jar("A", mtime=T0 + 45), 46)
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "file", False)]


# --- N11, N16, N17: the file's own problem overtakes an open verification -----------------------


def portal(at: float) -> CookieReport:
    """A captive-portal page written over the jar: not a cookie file."""
    return CookieReport(
        path=PATH, exists=True, size=28, mtime=T0 + at, mode=0o600, error="not a cookie file"
    )


def missing() -> CookieReport:
    return CookieReport(path=PATH, exists=False)


def test_n11_a_jar_replaced_after_the_ask_ends_the_verification_and_is_refreshed() -> None:
    """Seed 1000708: the job ended, then a captive-portal page replaced the jar. Once the page
    outlasts its grace, the open verification ends `unverified` (nothing can judge the upload
    any more) and the corrupt file's own refresh is asked, not held back for upload_timeout."""
    w = World(settings(upload_timeout=600, corrupt_grace=30))
    w.file(jar("A"), 0)
    w.poll("9", 10)
    w.poll(None, 60, finished("9", at=T0 + 60, created=T0 + 10))
    fx = w.file(portal(61), 61)
    assert w.src.verifying is not None and not w.src.verifying.same_session  # no jar: no upload
    assert verdicts(fx) == [] and of(fx, core.Enqueue) == []  # within its grace: an upload?
    fx = w.file(portal(61), 91)
    assert verdicts(fx) == ["unverified"] and of(fx, core.RecordOutcome) == []
    assert [e.reason for e in of(fx, core.Enqueue)] == [Reason.CORRUPT_COOKIES]


def test_n11_a_jar_missing_since_before_the_ask_waits_for_the_upload_then_no_upload() -> None:
    """The job was asked for the missing jar, and the jar never changed: the verification is the
    job's to end — an upload clears the problem, none is `no_upload` at the deadline."""
    w = World(settings(upload_timeout=120, missing_grace=60))
    w.file(jar("A"), 0)
    w.file(missing(), 5)
    w.poll("9", 70)  # asked for the missing jar
    w.poll(None, 100, finished("9", at=T0 + 100, created=T0 + 70))
    fx = w.file(missing(), 110)
    assert w.src.verifying is not None and verdicts(fx) == []
    fx = w(core.TimerFired("main", "upload"), 100 + 120)
    assert verdicts(fx) == ["no_upload"]


def test_n16_after_a_restart_the_remembered_upload_is_the_jobs_though_the_jar_is_gone() -> None:
    """Seeds 1004400, 1002102: the previous run saw the job's session B arrive; the jar was
    removed while the daemon was down. The job is booked again at start: B, first seen after the
    ask, is its upload (never `no_upload`), and the missing jar past its grace ends the
    verification `unverified` and is refreshed."""
    w = World(settings(upload_timeout=600, missing_grace=60))
    w.src.sessions = {"A": T0 - 86400, "B": T0 + 55}  # restored from the state file
    w.state.judged = set()
    w.t = 300
    fx = w.poll(None, 300, finished("9", at=T0 + 60, created=T0 + 10))
    assert w.src.verifying is not None and w.src.verifying.session_at == T0 + 55
    assert of(fx, core.RunValidation)  # it looks: the offline check
    w.file(missing(), 300)
    fx = w.validated(False, Reason.MISSING_COOKIES, began=300, at=300.1, offline=True)
    assert w.src.verifying is not None and verdicts(fx) == []  # the jar caught mid-write?
    fx = w.file(missing(), 360)
    assert verdicts(fx) == ["unverified"]
    assert [e.reason for e in of(fx, core.Enqueue)] == [Reason.MISSING_COOKIES]


# --- N18: without an account check, a guest getting through does not make it the account -------


def test_n18_a_failure_a_guest_does_not_meet_is_the_account_only_for_an_honoured_session() -> None:
    """Seed 1001544: a daemon without an account check called a logged-out session
    `account_restricted` (fails with cookies, works without) and never asked its refresh."""
    bot, forbidden = Reason.BOT_DETECTION, Reason.FORBIDDEN
    # no account check, a session of unknown standing: the cookies' failure, a refresh tells
    assert conclude(bot, None, False, None) == (bot, None)
    assert conclude(forbidden, None, False, None) == (forbidden, None)
    # the account check passed, or a refresh's fresh login just failed: the account
    restricted = (Reason.ACCOUNT_RESTRICTED, Reason.ACCOUNT_RESTRICTED)
    assert conclude(forbidden, None, True, None) == restricted
    assert conclude(bot, None, False, None, fresh=True) == restricted
    # the guest fails the same way: the address, whatever the account check
    assert conclude(bot, None, False, bot) == (Reason.IP_FLAGGED, Reason.IP_FLAGGED)


def test_n18_a_guest_getting_through_drops_an_address_or_po_token_diagnosis() -> None:
    """The diagnosis (po_token_required, a day old) is re-checked by a report; the cookie-less
    probe passes, the cookies fail: the PO token is not the cause, the diagnosis goes, and the
    failed validation asks its refresh."""
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    w.src.diagnosed = Reason.PO_TOKEN_REQUIRED
    fx = w.validated(False, Reason.BOT_DETECTION, began=10, at=15, bare_ok=True, trigger="report")
    assert w.src.diagnosis is None
    assert core.ShareDiagnosis("main", None) in fx
    assert [e.reason for e in of(fx, core.Enqueue)] == [Reason.BOT_DETECTION]


def test_n18_a_guest_getting_through_keeps_an_account_diagnosis() -> None:
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    w.src.diagnosed = Reason.ACCOUNT_RESTRICTED
    fx = w.validated(False, Reason.FORBIDDEN, began=10, at=15, bare_ok=True, trigger="report")
    assert w.src.diagnosis is Reason.ACCOUNT_RESTRICTED and of(fx, core.Enqueue) == []


# --- N19: a rewrite during the job, with the wall clock stepped back ----------------------------


def test_n19_a_same_session_rewrite_during_the_job_is_ordered_on_the_monotonic_clock() -> None:
    """Seed 1009707: the wall clock is stepped back an hour while the job runs; the extractor's
    rewrite of the same session (scp) is dated an hour before the ask on the wall clock, and the
    job was booked `no_upload`. On the monotonic clock the rewrite came after the ask."""
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    w.poll("9", 10)  # the job is asked (seen pending)
    w.wall_offset = -3600.0
    w.file(jar("A", size=2100, mtime=T0 + 70 - 3600), 70)  # the same session, written again
    fx = w.poll(None, 72, finished("9", at=T0 + 72, created=T0 + 10))
    assert w.src.verifying is not None and w.src.verifying.same_session
    assert of(fx, core.RunValidation)  # judged by a validation, not `no_upload` at the deadline


def test_n18_a_guest_getting_through_drops_our_address_diagnosis_not_a_peers_account_one() -> None:
    """Seed 1009296: a daemon without an account check held its own ip_flagged; a peer shared
    account_restricted. The guest getting through disproves the address only: the peer's
    diagnosis stays in Redis and here, and no job is asked."""
    w = World(settings(validate_every=3600))
    w.file(jar("A"), 0)
    w.src.diagnosed, w.src.shared_diagnosis = Reason.IP_FLAGGED, Reason.ACCOUNT_RESTRICTED
    fx = w.validated(False, Reason.FORBIDDEN, began=10, at=15, bare_ok=True)
    assert w.src.diagnosis is Reason.ACCOUNT_RESTRICTED
    assert of(fx, core.ShareDiagnosis) == [] and of(fx, core.Enqueue) == []


# --- N21: a failure taken under a peer's diagnosis is looked at again when it goes --------------


def test_n21_a_failed_validation_under_a_lifted_diagnosis_validates_again_first() -> None:
    """Seed 1001387: a daemon without an account check failed `forbidden` while a peer's
    account_restricted stood; the account was lifted, the peer's pass deleted the diagnosis, and
    the old failure paid a login for a healthy jar. It validates again first."""
    w = World(settings(validate_every=1800))
    w.file(jar("A"), 0)
    w.poll(None, 1, diagnoses={"main": Reason.ACCOUNT_RESTRICTED})
    fx = w.validated(False, Reason.FORBIDDEN, began=10, at=15, bare_ok=True)
    assert of(fx, core.Enqueue) == []  # the peer's diagnosis explains it
    fx = w.poll(None, 100, diagnoses={})
    assert of(fx, core.Enqueue) == [] and of(fx, core.RunValidation)


# --- N22: a job booked finished in a poll is not pending after it --------------------------------


def test_n22_a_job_read_pending_and_finished_in_one_poll_is_finished() -> None:
    """CI (test_problem_logs::test_refreshes_that_do_not_help_warn_once): the runtime's poll reads
    each source's pending job, then the finished jobs; a job that ends between the two reads is
    named by both. The core booked it finished and kept it pending, so a person's trigger right
    after was answered `coalesced` onto a finished job and no job was ever asked."""
    w = World()
    w.file(jar("A"), 0)
    ask = core.RefreshAsked("main", Reason.MANUAL, "api", False)
    w.answered("enqueued", of(w(ask, 5), core.Enqueue)[0], job_id="9")
    w.poll("9", 6)
    fx = w.poll("9", 40, finished("9", at=T0 + 40, created=T0 + 5))
    assert of(fx, core.Arm) == [core.Arm("main", "upload", M0 + 40 + w.src.settings.upload_timeout)]
    assert w.src.pending_job is None and w.src.pending_progress is None
    assert "9" not in w.src.watched and "9" not in w.src.asked_mono  # not seen pending anew
    fx = w(core.RefreshAsked("main", Reason.MANUAL, "api", True), 41)
    assert of(fx, core.Answer) == [] and of(fx, core.Enqueue) == [
        core.Enqueue("main", Reason.MANUAL, "api", True)
    ]
    fx = w.poll(None, 42)  # the next poll reads it neither pending nor newly finished
    assert of(fx, core.Count) == [] and w.src.verifying is not None


# --- N23: a person's request coalesced from the last poll's view --------------------------------


def _riding(job: str = "9") -> tuple[World, list[core.Effect]]:
    """A job the last poll (t=6) read pending; a person asks at t=7: `coalesced` onto it."""
    w = World()
    w.file(jar("A"), 0)
    w.poll(job, 6)
    fx = w(core.RefreshAsked("main", Reason.MANUAL, "api", True), 7)
    assert [a.state for a in of(fx, core.Answer)] == ["coalesced"] and not of(fx, core.Enqueue)
    return w, fx


def test_n23_a_job_that_failed_before_any_later_read_asks_the_persons_request_again() -> None:
    """The job may have failed between the poll that read it pending and the person's trigger:
    nothing then ran for them. The next poll finds it failed: their request is asked as made."""
    w, _ = _riding()
    fx = w.poll(None, 8, finished("9", at=T0 + 6.5, created=T0 + 1, outcome="failed"))
    assert of(fx, core.Enqueue) == [core.Enqueue("main", Reason.MANUAL, "owed", True)]
    assert w.src.riding is None
    assert not of(w.poll(None, 10), core.Enqueue)  # asked once


def test_n23_a_job_a_later_read_found_pending_is_theirs_to_wait_for() -> None:
    """A read taken after the request found the job pending: it was on its way when they
    asked, so its failure is the answer they were given (no second login)."""
    w, _ = _riding()
    w.poll("9", 8, read_at=M0 + 7.5)
    assert w.src.riding is None
    fx = w.poll(None, 10, finished("9", at=T0 + 9, created=T0 + 1, outcome="failed"))
    assert not of(fx, core.Enqueue)


def test_n23_a_read_begun_before_the_request_proves_nothing() -> None:
    """The poll's reads were awaited while the trigger was handled: what they found pending may
    have ended before the request. Only a read begun after it settles the ride."""
    w, _ = _riding()
    w.poll("9", 8, read_at=M0 + 6.9)  # began before the request at 7
    assert w.src.riding is not None
    fx = w.poll(None, 10, finished("9", at=T0 + 6.95, created=T0 + 1, outcome="failed"))
    assert of(fx, core.Enqueue) == [core.Enqueue("main", Reason.MANUAL, "owed", True)]


def test_n23_a_completed_job_or_another_on_its_way_serves_the_request() -> None:
    w, _ = _riding()
    fx = w.poll(None, 8, finished("9", at=T0 + 6.5, created=T0 + 1))
    assert not of(fx, core.Enqueue) and w.src.riding is None
    w, _ = _riding()
    fx = w.poll("10", 8, finished("9", at=T0 + 6.5, created=T0 + 1, outcome="failed"))
    assert not of(fx, core.Enqueue) and w.src.riding is None


def test_n23_a_vanished_job_asks_the_request_once() -> None:
    """The job vanished (a peer removed it): the person's request is asked once, whoever else
    asked for the lost job."""
    w, _ = _riding()
    fx = w.poll(None, 8, vanished=frozenset({"9"}))
    assert of(fx, core.Enqueue) == [core.Enqueue("main", Reason.MANUAL, "owed", True)]


def test_n23_only_a_persons_request_rides() -> None:
    """An automatic report coalesced onto the job is pursued by the need, not remembered."""
    w = World()
    w.file(jar("A"), 0)
    w.poll("9", 6)
    fx = w(core.RefreshAsked("main", Reason.BOT_DETECTION, "report", False, error="x"), 7)
    assert w.src.riding is None, fx


# --- N24: a retry waits for the backoff Redis holds, not an older, longer one -------------------


def test_n24_a_retry_armed_for_a_longer_backoff_comes_back_when_redis_s_ends() -> None:
    """Seed 1005978: a daemon validating on demand was told `backoff` for a day; Redis came back
    empty, a person's refresh failed, and the daemon's own booking read the new count's wait
    (30 min). Its retry stayed a day away: the dead jar's refresh waited 14 511 s past it."""
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    fx = w.validated(False, Reason.LOGGED_OUT, began=5, at=10)
    w.answered("backoff", of(fx, core.Enqueue)[0], retry_after=86400.0)
    assert w.src.retry_at == M0 + 10 + 86400
    fx = w(core.BackoffObserved("main", 1, T0 + 100 + 1800), 100)  # Redis: the new count's wait
    assert of(fx, core.Arm) == [core.Arm("main", "retry", M0 + 100 + 1800)]
    fx = w(core.TimerFired("main", "retry"), 100 + 1800)
    assert of(fx, core.RunValidation)  # the evidence is looked at again, then asked
    fx = w.validated(False, Reason.LOGGED_OUT, began=1901, at=1905, trigger="retry")
    assert of(fx, core.Enqueue)


def test_n24_a_longer_or_unchanged_backoff_leaves_the_retry_alone() -> None:
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    fx = w.validated(False, Reason.LOGGED_OUT, began=5, at=10)
    w.answered("backoff", of(fx, core.Enqueue)[0], retry_after=1800.0)
    assert of(w(core.BackoffObserved("main", 2, T0 + 10 + 1800), 20), core.Arm) == []
    assert of(w(core.BackoffObserved("main", 3, T0 + 20 + 3600), 20), core.Arm) == []
    assert w.src.retry_at == M0 + 10 + 1800


# --- N25: the diagnosis we hold, deleted from Redis by a peer, is looked at again --------------


def test_n25_our_diagnosis_deleted_from_redis_within_an_epoch_is_validated_again() -> None:
    """Seed 1002241: a daemon validating on demand, without an account check, diagnosed
    account_restricted; the account was lifted and a peer's pass deleted the shared copy, but
    this daemon held its own for a day: an old, dead jar written back was `bot_detection` with a
    guest getting through (it cannot tell), the diagnosis was shared again and no refresh came."""
    w = World(settings(validate_every=0, account_check_url=""))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={})
    fx = w.validated(
        False, Reason.ACCOUNT_RESTRICTED, began=5, at=10, diagnosis=Reason.ACCOUNT_RESTRICTED
    )
    assert of(fx, core.ShareDiagnosis)
    w.poll(None, 12, epoch="e1", diagnoses={"main": Reason.ACCOUNT_RESTRICTED})
    fx = w.poll(None, 600, epoch="e1", diagnoses={})  # a peer's pass deleted it
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "retry", True)]
    fx = w.validated(True, began=601, at=605, trigger="retry", bare_ok=True)
    assert w.src.diagnosis is None


def test_n25_a_flush_shares_our_diagnosis_again_without_a_validation() -> None:
    w = World(settings(validate_every=0, account_check_url=""))
    w.file(jar("A"), 0)
    w.poll(None, 1, epoch="e1", diagnoses={})
    w.validated(
        False, Reason.ACCOUNT_RESTRICTED, began=5, at=10, diagnosis=Reason.ACCOUNT_RESTRICTED
    )
    w.poll(None, 12, epoch="e1", diagnoses={"main": Reason.ACCOUNT_RESTRICTED})
    fx = w.poll(None, 14, epoch="e2", diagnoses={})  # Redis lost its data: not a contradiction
    assert of(fx, core.RunValidation) == [] and of(fx, core.ShareDiagnosis)


# --- N26: only an upload this run saw arrive is a fresh login ----------------------------------


def test_n26_a_job_first_met_finished_uploaded_a_session_of_unknown_age() -> None:
    """Seed 1005300: a daemon without an account check was down while a job ran and a peer
    verified it; YouTube dropped that session five minutes later; the daemon came back, booked
    the job, and its `still_failing` took the session for a fresh login: the guest getting
    through named account_restricted, shared for a day, and the dead jar was never refreshed."""
    w = World(settings(validate_every=0, account_check_url=""))
    w.file(jar("A"), 0)
    w.poll(None, 1)
    w.poll(None, 400, finished("9", at=T0 + 320, created=T0 + 250))  # back: the job is done
    fx = w.file(jar("B", mtime=T0 + 300), 400)  # its upload, first seen by this run now
    assert of(fx, core.RunValidation)  # the verification
    fx = w.validated(False, Reason.BOT_DETECTION, began=401, at=405, trigger="verification")
    assert verdicts(fx) == ["still_failing"]
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "retry", True)]


def test_n26_an_upload_seen_after_the_ask_is_a_fresh_login() -> None:
    w = World(settings(validate_every=0, account_check_url=""))
    w.file(jar("A"), 0)
    w.poll("9", 10)  # seen pending: this run saw it asked
    w.file(jar("B", mtime=T0 + 60), 60)
    fx = w.poll(None, 62, finished("9", at=T0 + 61, created=T0 + 9))
    fx = w.validated(False, Reason.BOT_DETECTION, began=63, at=66, trigger="verification")
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "diagnosis", True)]


# --- N30: uploads nobody could judge, one after another ------------------------------------------


def _unjudged_refresh(w: World, job_id: str, session: str, at: float) -> list[core.Effect]:
    """A peer's job uploads a new session; YouTube rate-limits the validation; the deadline."""
    w.poll(job_id, at)
    w.file(jar(session, mtime=T0 + at + 40), at + 40)
    w.poll(None, at + 42, finished(job_id, at=T0 + at + 42, created=T0 + at))
    w.validated(False, Reason.RATE_LIMITED, began=at + 43, at=at + 45, trigger="verification")
    return w(core.TimerFired("main", "upload"), at + 42 + 120)


def test_n30_a_second_upload_nobody_could_judge_counts_as_unsuccessful() -> None:
    """Seed 1004847: YouTube rate-limits every validation while the extractor uploads sessions
    that fail; each verification ended `unverified`, which counted neither way, so the backoff
    never grew and the learned renewal asked a login every 21 minutes (10 jobs in 3 h 16 min
    against P1's 9). The first such upload since the source last worked is excused; the next
    one is an unsuccessful refresh."""
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    fx = _unjudged_refresh(w, "9", "B", 10)
    assert verdicts(fx) == ["unverified"] and of(fx, core.RecordOutcome) == []
    fx = _unjudged_refresh(w, "10", "C", 1000)
    assert verdicts(fx) == ["unverified"]
    assert of(fx, core.RecordOutcome) == [core.RecordOutcome("main", "10", False)]
    fx = _unjudged_refresh(w, "11", "D", 2000)
    assert of(fx, core.RecordOutcome) == [core.RecordOutcome("main", "11", False)]


@pytest.mark.parametrize("offline", [False, True])
def test_n30_only_a_pass_online_in_between_excuses_the_next_one_again(offline: bool) -> None:
    """The rate limit lifted and session B passed: the next unjudged upload is excused again.
    A pass that looked at the jar only (offline) says nothing of B: the next one counts."""
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    _unjudged_refresh(w, "9", "B", 10)
    w.validated(True, began=500, at=505, offline=offline)
    fx = _unjudged_refresh(w, "10", "C", 1000)
    assert verdicts(fx) == ["unverified"]
    counted = [core.RecordOutcome("main", "10", False)] if offline else []
    assert of(fx, core.RecordOutcome) == counted


def test_n30_a_restart_does_not_excuse_a_second_one() -> None:
    w = World(settings(upload_timeout=120))
    w.file(jar("A"), 0)
    _unjudged_refresh(w, "9", "B", 10)
    later = World(settings(upload_timeout=120))
    memory.restore(later.state, memory.snapshot(w.state, b"k" * 32))
    later.file(jar("B"), 500)
    fx = _unjudged_refresh(later, "10", "C", 1000)
    assert of(fx, core.RecordOutcome) == [core.RecordOutcome("main", "10", False)]


# --- N31: a job id repeats after Redis lost its data --------------------------------------------


def _logged_out_jar_rewritten(w: World, job_id: str, at: float) -> list[core.Effect]:
    """The job re-uploads the logged-out jar (the extractor's same session), then ends."""
    w.file(jar(None, mtime=T0 + at + 30, size=2100), at + 30)
    return w.poll(None, at + 32, finished(job_id, at=T0 + at + 32, created=T0 + at))


def test_n31_our_new_job_with_an_old_id_is_dated_by_its_own_ask() -> None:
    """Seed 1000555: after a FLUSHALL bull's ids start again; the daemon asked job 9 for the
    logged-out jar, but kept the ask of the old epoch's job 9 (days before the jar logged out):
    the jar's problem looked newer than the ask, so the verification ended `unverified` at once
    (N11), booked nothing, and the refresh was asked again at every cooldown (P1). Seed 1002210
    is the same stale ask: the extractor's re-upload of the session looked like a new session
    arriving after the ask, so N7 did not count it, and rotations repeated every 11 minutes."""
    w = World(settings(upload_timeout=600))
    w.file(jar("A"), 0)
    ask = of(w(core.RefreshAsked("main", Reason.MANUAL, "api"), 10), core.Enqueue)[0]
    w.answered("enqueued", ask, job_id="9")  # the old epoch's job 9, lost in a FLUSHALL
    w.poll(None, 20, vanished=frozenset({"9"}))
    # the jar logs out: its refresh is asked, and Redis gives the new job id 9 again
    ask = of(w.file(jar(None), 100), core.Enqueue)[0]
    assert ask.reason is Reason.LOGGED_OUT
    w.t = 101
    w.answered("enqueued", ask, job_id="9")
    fx = _logged_out_jar_rewritten(w, "9", 110)
    assert verdicts(fx) == [] and w.src.verifying is not None  # the validation judges it
    fx = w.validated(False, Reason.LOGGED_OUT, began=143, at=143.1, offline=True)
    assert verdicts(fx) == ["still_failing"]
    assert of(fx, core.RecordOutcome) == [core.RecordOutcome("main", "9", False)]


def test_n31_a_peers_job_with_an_old_id_after_a_new_epoch_is_first_seen_anew() -> None:
    w = World(settings(upload_timeout=600))
    w.file(jar("A"), 0)
    w.poll("9", 10, epoch="e1")  # a peer's job 9, first seen pending
    w.poll(None, 20, epoch="e2", vanished=frozenset({"9"}))  # Redis back empty
    w.file(jar(None), 100)
    w.poll("9", 110, epoch="e2")  # the peer's new job 9
    fx = _logged_out_jar_rewritten(w, "9", 110)
    assert verdicts(fx) == [] and w.src.verifying is not None


# --- N32: the holder of a diagnosis confirms it before its shared copy expires ------------------


def test_n32_the_holder_rechecks_its_diagnosis_before_the_shared_copy_expires() -> None:
    """Seeds 1003052, 1009207: a daemon validating only on demand diagnosed po_token_required
    and shared it for a day; nothing ran for a day, the copy expired in Redis while the
    diagnosis still stood, and a peer asked its due rotation behind the PO-token wall (P1).
    Halfway through the copy's life the holder validates again, and shares what it finds."""
    w = World(settings(validate_every=0))
    _diagnosed(w)
    ttl = core.diagnosis_ttl(w.src.settings)
    shared = {"main": Reason.PO_TOKEN_REQUIRED}
    assert of(w.poll(None, 5 + ttl / 2 - 1, diagnoses=shared), core.RunValidation) == []
    fx = w.poll(None, 5 + ttl / 2 + 1, diagnoses=shared)
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "diagnosis", True)]
    assert of(w.poll(None, 5 + ttl / 2 + 3, diagnoses=shared), core.RunValidation) == []
    fx = w.validated(
        False,
        Reason.PO_TOKEN_REQUIRED,
        began=5 + ttl / 2 + 1,
        at=5 + ttl / 2 + 6,
        diagnosis=Reason.PO_TOKEN_REQUIRED,
        trigger="diagnosis",
    )
    assert core.ShareDiagnosis("main", Reason.PO_TOKEN_REQUIRED, ttl) in of(fx, core.ShareDiagnosis)
    assert of(w.poll(None, ttl, diagnoses=shared), core.RunValidation) == []  # shared anew


def test_n32_a_run_that_proves_nothing_is_tried_again_later_not_at_every_poll() -> None:
    w = World(settings(validate_every=0))
    _diagnosed(w)
    ttl = core.diagnosis_ttl(w.src.settings)
    w.poll(None, 5 + ttl / 2 + 1)
    v = core.Validation(False, None, T0, T0, "diagnosis", read_error="EIO")
    w(core.ValidationFinished("main", v), 5 + ttl / 2 + 2)  # the daemon could not read the jar
    assert of(w.poll(None, 5 + ttl / 2 + 4), core.RunValidation) == []
    fx = w.poll(None, 5 + ttl / 2 + 1 + core.DIAGNOSIS_RECHECK)
    assert of(fx, core.RunValidation) == [core.RunValidation("main", "diagnosis", True)]


def test_n32_a_daemon_that_only_read_a_peers_diagnosis_does_not_recheck_it() -> None:
    w = World(settings(validate_every=0))
    w.file(jar("A"), 0)
    shared = {"main": Reason.PO_TOKEN_REQUIRED}
    w.poll(None, 1, diagnoses=shared)
    assert of(w.poll(None, 86400, diagnoses=shared), core.RunValidation) == []


# --- N27: the bot wall on the account check too: a guest tells the address, not a login ---------

WALL = Reason.BOT_DETECTION


def validate_through_the_pipeline(
    w: World, answers: dict[str, Reason | None], *, began: float, at: float
) -> tuple[list[str], list[core.Effect]]:
    """A validation as the runtime's validator runs it: the runs `next_probe` asks for, answered
    from `answers` (media, account, bare), and `validation_of`'s verdict handed to the core."""
    plan = core.plan_validation(w.src)
    said: tuple[core.ProbeSaid, ...] = ()
    while (run := core.next_probe(plan, said)) is not None:
        said += (core.ProbeSaid(run.kind, run.url, answers[run.kind]),)
    v = replace(core.validation_of(said, T0 + began, T0 + at, "schedule"), took=at - began)
    w.t = at
    return [p.kind for p in said], w(core.ValidationFinished("main", v))


def test_n27_the_wall_on_the_account_check_and_for_a_guest_is_the_address_without_a_login() -> None:
    """Seed 1000001: the bot wall stopped the media probe and the account check alike; nothing ran
    without cookies, the wall was taken for the cookies' failure, and a login was spent behind a
    flagged IP to find out (the refresh's fresh session was `still_failing`, then diagnosed). Now
    the cookie-less probe runs at once: the guest meets the same wall, so it is the address."""
    w = World()
    w.file(jar("A"), 0)
    kinds, fx = validate_through_the_pipeline(
        w, {"media": WALL, "account": WALL, "bare": WALL}, began=10, at=15
    )
    assert kinds == ["media", "account", "bare"]  # one yt-dlp run more, no login
    assert of(fx, core.Enqueue) == []
    assert w.src.diagnosis is Reason.IP_FLAGGED
    assert core.ShareDiagnosis("main", Reason.IP_FLAGGED, 3 * 1800.0) in fx
    assert core.need(w.src, w.now()) is None  # no evidence a refresh would fix
    # the cookie alert stays quiet: the failure is not fixable, the health gate stays open
    last = w.src.last_validation
    assert last is not None and not last.conclusive


def test_n27_a_guest_getting_through_leaves_the_wall_the_cookies_failure() -> None:
    """The wall with cookies and on the account check, but a guest gets through: the address is
    not blocked, and a session of unknown standing that YouTube walls is the cookies' (N18)."""
    w = World()
    w.file(jar("A"), 0)
    kinds, fx = validate_through_the_pipeline(
        w, {"media": WALL, "account": WALL, "bare": None}, began=10, at=15
    )
    assert kinds == ["media", "account", "bare"]
    assert w.src.diagnosis is None
    assert [e.reason for e in of(fx, core.Enqueue)] == [WALL]


def test_n27_a_dead_session_is_told_by_the_account_check_without_a_guest() -> None:
    """The account check says the session is dead: that is the verdict (P2), nothing more runs."""
    w = World()
    w.file(jar("A"), 0)
    kinds, fx = validate_through_the_pipeline(
        w, {"media": WALL, "account": Reason.LOGGED_OUT, "bare": WALL}, began=10, at=15
    )
    assert kinds == ["media", "account"]
    assert w.src.diagnosis is None
    assert [e.reason for e in of(fx, core.Enqueue)] == [Reason.LOGGED_OUT]


# --- N33: a poll whose reads began before our job was asked -------------------------------------


def test_n33_a_read_begun_before_the_ask_keeps_the_job_and_its_reason() -> None:
    """CI (test_alert_mail::test_missing_jar_mails_firing_then_resolved, a fresh-clone run): the
    poll's reads were awaited while a refresh was asked and answered; applied after the answer,
    the read (which could not see the job) dropped it, and the next poll found it again without
    its reason: the mail said `Refresh job 1: pending.`, and the person's request was not asked
    again when the job vanished."""
    w = World()
    w.file(jar("A"), 0)
    ask = core.RefreshAsked("main", Reason.MANUAL, "api", False)
    w.answered("enqueued", of(w(ask, 5), core.Enqueue)[0], job_id="9")
    w.poll(None, 6, read_at=M0 + 4.9)  # began before the answer at 5
    assert (w.src.pending_job, w.src.pending_reason) == ("9", Reason.MANUAL)
    assert w.src.pending_progress is not None  # the enqueue's, until a read finds the job
    w.poll("9", 8)
    assert (w.src.pending_job, w.src.pending_reason) == ("9", Reason.MANUAL)
    fx = w.poll(None, 10, vanished=frozenset({"9"}))
    assert of(fx, core.Enqueue) == [core.Enqueue("main", Reason.MANUAL, "retry")]


def test_n33_a_read_begun_after_the_ask_still_settles_the_job() -> None:
    """Only a read that began before the job was known is discounted: a later one that names
    no pending job (nor finished, nor vanished) is the queue's word, as before."""
    w = World()
    w.file(jar("A"), 0)
    ask = core.RefreshAsked("main", Reason.MANUAL, "api", False)
    w.answered("enqueued", of(w(ask, 5), core.Enqueue)[0], job_id="9")
    w.poll(None, 6, read_at=M0 + 5.5)
    assert (w.src.pending_job, w.src.pending_reason) == (None, None)
    w = World()
    w.file(jar("A"), 0)
    w.answered("enqueued", of(w(ask, 5), core.Enqueue)[0], job_id="9")
    fx = w.poll(None, 6, finished("9", at=T0 + 5.5, created=T0 + 5), read_at=M0 + 4.9)
    assert w.src.pending_job is None and fx  # it ended within the reads: booked finished
