"""The core's job observation (core/jobs.py), driven with a fake clock: finished jobs booked once
by id, vanished jobs, bounded memory, Redis going away."""

from __future__ import annotations

from cookie_supervisor import core, memory
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import (
    Arm,
    FileInspected,
    Notify,
    QueueObserved,
    RecordOutcome,
    RedisDown,
    RefreshAnswered,
    RefreshAsked,
    ValidationFinished,
)
from tests.corekit import (
    DAY,
    T0,
    Harness,
    counted,
    enqueued,
    failed_validation,
    jar,
    job,
    of,
    settings,
)

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


def test_redis_down_is_logged_once() -> None:
    h = Harness()
    assert len(of(h(RedisDown("connection refused")), core.Log)) == 1
    assert h(RedisDown("connection refused")) == []
    assert h.state.redis_up is False and h.state.counts is None


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
    saved = memory.snapshot(h.state, b"k" * 32)
    later = Harness(redis_up=None)
    memory.restore(later.state, saved)
    later.file(jar())
    meanwhile = job("2", "failed", at=T0 + 100, created=T0 + 90)
    fx = later(QueueObserved({"main": None}, (old, meanwhile)), at=T0 + 200)
    assert of(fx, RecordOutcome) == [RecordOutcome("main", "2", False)]


def test_retry_and_verification_waits_are_monotonic_and_rotation_dates_are_wall() -> None:
    assert {"rotation"} == core.WALL_TIMERS
    s = core.State.of([settings(rotate_after=7 * DAY, upload_timeout=600).policy()])
    s.redis_up = True
    at = core.Now(mono=50.0, wall=T0)
    fx = core.step(s, FileInspected("main", jar(mtime=T0)), at)
    assert Arm("main", "rotation", T0 + 7 * DAY) in fx  # a date
    ask = enqueued(
        core.step(s, ValidationFinished("main", failed_validation(Reason.COOKIES_ROTATED)), at)
    )
    fx = core.step(s, RefreshAnswered("main", ask.reason, ask.origin, "cooldown", "1", 30), at)
    assert Arm("main", "retry", 80.0) in fx  # an interval
    core.step(s, QueueObserved({"main": None}), at)
    fx = core.step(s, QueueObserved({"main": None}, (job("1", at=T0 - 300, created=T0),)), at)
    assert Arm("main", "upload", 650.0) in fx
