"""The validation pipeline's pure rules (pipeline.py): which probe settles, when the account check
and the cookie-less probe run, the verdict of them all."""

from __future__ import annotations

from typing import Any

import pytest

from cookie_supervisor import verdict as pipeline
from cookie_supervisor.classify import Reason
from tests.corekit import ACCOUNT, T0, YT, YT2, probe_said


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
    assert pipeline.wants_diagnosis(media, account_ok, asked) is expected


@pytest.mark.parametrize(
    ("media", "account", "expected"),
    [
        # the wall stopped the account check too: only a guest tells the address (N27)
        (Reason.BOT_DETECTION, Reason.BOT_DETECTION, True),
        (Reason.FORBIDDEN, Reason.BOT_DETECTION, True),
        (Reason.BOT_DETECTION, Reason.IP_FLAGGED, True),  # "Your IP is likely being blocked"
        # the account check spoke for the session, or proved nothing
        (Reason.BOT_DETECTION, Reason.LOGGED_OUT, False),
        (Reason.BOT_DETECTION, Reason.COOKIES_ROTATED, False),
        (Reason.BOT_DETECTION, Reason.RATE_LIMITED, False),
        (Reason.BOT_DETECTION, Reason.NETWORK_ERROR, False),
        (Reason.BOT_DETECTION, Reason.TIMEOUT, False),
        # the media probe's failure is not one a guest can explain
        (Reason.COOKIES_ROTATED, Reason.BOT_DETECTION, False),
        (Reason.RATE_LIMITED, Reason.BOT_DETECTION, False),
    ],
)
def test_the_wall_on_the_account_check_asks_the_guest(
    media: Reason, account: Reason, expected: bool
) -> None:
    assert pipeline.wants_diagnosis(media, False, False, account) is expected


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
    assert pipeline.conclude(media, account, ran, without) == (verdict, diagnosis)


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
    assert pipeline.settles(ok, reason) is expected


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
    assert pipeline.wants_account_check(media) is expected


@pytest.mark.parametrize(
    ("diagnose", "runs", "expected"),
    [
        # a removed first video lets the second speak; it passes; the account check follows
        (False, [("media", YT, Reason.UNAVAILABLE), ("media", YT2, None)], "account"),
        (False, [("media", YT, None), ("account", ACCOUNT, None)], None),
        # the wall on both: the guest tells the address from the session (N27; before: nothing
        # more unless a diagnosis stood, and the wall was taken for the cookies' failure)
        (
            False,
            [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, "bot")],
            "bare",
        ),
        # the account check says the session is dead: that is the verdict, no guest needed
        (
            False,
            [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, Reason.LOGGED_OUT)],
            None,
        ),
        # the account check could not run for a reason that is no wall: nothing to compare
        (
            False,
            [("media", YT, Reason.BOT_DETECTION), ("account", ACCOUNT, Reason.NETWORK_ERROR)],
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
    plan = pipeline.ValidationPlan((YT, YT2), ACCOUNT, diagnose)
    said = tuple(probe_said(k, u, Reason.BOT_DETECTION if r == "bot" else r) for k, u, r in runs)
    found = pipeline.next_probe(plan, said)
    assert (found.kind if found else None) == expected
    if found is not None and found.kind == "bare":
        assert found.url == YT


def test_a_whole_pipeline_run_concludes_ip_flagged() -> None:
    plan = pipeline.ValidationPlan((YT,), ACCOUNT, False)
    answers = {"media": Reason.BOT_DETECTION, "account": None, "bare": Reason.BOT_DETECTION}
    said: tuple[pipeline.ProbeSaid, ...] = ()
    while (run := pipeline.next_probe(plan, said)) is not None:
        said += (probe_said(run.kind, run.url, answers[run.kind]),)
    assert [p.kind for p in said] == ["media", "account", "bare"]
    v = pipeline.validation_of(said, T0, T0 + 3, "schedule")
    assert (v.reason, v.diagnosis, v.account_ok) == (Reason.IP_FLAGGED, Reason.IP_FLAGGED, True)


@pytest.mark.parametrize(
    ("answers", "kinds", "verdict", "diagnosis"),
    [
        # the wall with cookies, on the account check and for a guest: the address, no login
        (
            {
                "media": Reason.BOT_DETECTION,
                "account": Reason.BOT_DETECTION,
                "bare": Reason.BOT_DETECTION,
            },
            ["media", "account", "bare"],
            Reason.IP_FLAGGED,
            Reason.IP_FLAGGED,
        ),
        (
            {
                "media": Reason.BOT_DETECTION,
                "account": Reason.BOT_DETECTION,
                "bare": Reason.IP_FLAGGED,
            },
            ["media", "account", "bare"],
            Reason.IP_FLAGGED,
            Reason.IP_FLAGGED,
        ),
        # a guest gets through: a session of unknown standing, the cookies' failure (N18)
        (
            {"media": Reason.BOT_DETECTION, "account": Reason.BOT_DETECTION, "bare": None},
            ["media", "account", "bare"],
            Reason.BOT_DETECTION,
            None,
        ),
        # the guest's run proves nothing: the media failure stands, as before
        (
            {
                "media": Reason.BOT_DETECTION,
                "account": Reason.BOT_DETECTION,
                "bare": Reason.TIMEOUT,
            },
            ["media", "account", "bare"],
            Reason.BOT_DETECTION,
            None,
        ),
        # the account check says the session is dead: that is the verdict, one run fewer
        (
            {
                "media": Reason.BOT_DETECTION,
                "account": Reason.LOGGED_OUT,
                "bare": Reason.BOT_DETECTION,
            },
            ["media", "account"],
            Reason.LOGGED_OUT,
            None,
        ),
    ],
)
def test_a_whole_pipeline_run_behind_the_wall(
    answers: dict[str, Reason | None], kinds: list[str], verdict: Reason, diagnosis: Reason | None
) -> None:
    """N27: the bot wall stopped the account check too; the cookie-less probe (one yt-dlp run)
    tells a blocked address from a session YouTube does not honour, where the wall was taken for
    the cookies' failure and a login was spent to find out."""
    plan = pipeline.ValidationPlan((YT,), ACCOUNT, False)
    said: tuple[pipeline.ProbeSaid, ...] = ()
    while (run := pipeline.next_probe(plan, said)) is not None:
        said += (probe_said(run.kind, run.url, answers[run.kind]),)
    assert [p.kind for p in said] == kinds
    v = pipeline.validation_of(said, T0, T0 + 3, "schedule")
    assert (v.reason, v.diagnosis, v.account_ok) == (verdict, diagnosis, False)
    assert v.conclusive is verdict.fixable  # a cookie alert and a login only for the cookies
