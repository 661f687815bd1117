"""The core's refresh sub-machine (core/refresh.py), driven with a fake clock: what a request
asks for, Redis's answers, the brakes, owed refreshes, and a standing diagnosis honoured."""

from __future__ import annotations

import pytest

from cookie_supervisor import core, memory
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import (
    Answer,
    Enqueue,
    QueueObserved,
    RedisDown,
    RefreshAsked,
    RunValidation,
    TimerFired,
)
from tests.corekit import (
    DAY,
    MISSING,
    T0,
    Harness,
    counted,
    diagnosed_by,
    enqueued,
    jar,
    of,
    settings,
)

# --- defect 5: owed refreshes survive a restart and are re-checked before they are paid -------


def test_defect5_owed_refresh_survives_restart_and_is_paid_once() -> None:
    h = Harness(redis_up=False)
    h.file(jar())
    fx = h(RefreshAsked("main", Reason.BOT_DETECTION, "api"))
    [answer] = of(fx, Answer)
    assert answer.state == "deferred" and "owes" in answer.message
    saved = memory.snapshot(h.state, b"k" * 32)
    later = Harness(redis_up=None)
    memory.restore(later.state, saved)
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


def test_trigger_on_filters_each_piece_of_evidence_before_the_strongest_wins() -> None:
    h = Harness(settings(trigger_on=["scheduled_rotation"], rotate_after=DAY, renew_before=0))
    h.file(jar(mtime=T0))
    # a bot check this source does not act on, and it outranks a rotation
    assert of(h.validated(False, Reason.BOT_DETECTION), Enqueue) == []
    fx = h(TimerFired("main", "rotation"), at=T0 + DAY)
    assert enqueued(fx).reason is Reason.SCHEDULED_ROTATION


def test_d2b_backend_reports_honour_the_standing_diagnosis() -> None:
    h = Harness()
    h.file(jar())
    diagnosed_by(h)
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
    # The failed validation was taken under the diagnosis: it is checked again before a login
    # (N21: the peer may have dropped it because the address works again).
    assert of(fx, Enqueue) == []
    assert [(v.source, v.trigger) for v in of(fx, core.RunValidation)] == [("main", "retry")]
    fx = h.validated(False, Reason.BOT_DETECTION, media_reason=Reason.BOT_DETECTION)
    assert enqueued(fx).reason is Reason.BOT_DETECTION  # failing still, with nothing in the way
