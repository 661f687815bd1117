"""The core's small rules as tables: what the evidence calls for (`need`), whether an owed refresh
is still called for (`still_owed`), how long a file problem waits before it counts (grace), which
reports may or may not be about the cookies (`ambiguous`), and what a trigger asks for
(`resolve_reason`). One row per case; the id says what the row is about."""

from __future__ import annotations

from typing import Any

import pytest

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import Arm, Owed, Validation
from cookie_supervisor.model import CookieReport
from tests.corekit import CORRUPT, DAY, MISSING, T0, Harness, jar, of, settings

BOT = "Sign in to confirm you're not a bot"


def source(setup: dict[str, Any], **cfg: Any) -> core.Source:
    """A source in the state `setup` describes (attributes of core.Source, set as they are)."""
    src = core.State.of([settings(**cfg).policy()]).sources["main"]
    for key, value in setup.items():
        setattr(src, key, value)
    return src


def failed(reason: Reason, *, offline: bool = False, at: float = T0) -> Validation:
    return Validation(False, reason, at, at, "schedule", offline=offline)


def passed(*, offline: bool = False, at: float = T0) -> Validation:
    return Validation(True, None, at, at, "schedule", offline=offline)


# A problem of the file's that has outlasted its grace, and one still inside it.
PAST = {"problem_confirm_at": T0 - 1}
WITHIN = {"problem_confirm_at": T0 + 60}
# A logged-in jar whose session arrived 8 days ago: rotate_after (7 days) is due.
ROTATION_DUE = {"report": jar("A"), "session": "A", "sessions": {"A": T0 - 8 * DAY}}
ROTATION_AHEAD = {"report": jar("A"), "session": "A", "sessions": {"A": T0 - DAY}}
EXPIRING = {"report": jar("A", expires=T0 + DAY)}  # inside renew_before (2 days)


# --- need ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "cfg", "expected"),
    [
        pytest.param({}, {}, None, id="no-evidence"),
        pytest.param(
            {"problem": Reason.MISSING_COOKIES, **PAST}, {}, Reason.MISSING_COOKIES, id="file-past"
        ),
        pytest.param({"problem": Reason.MISSING_COOKIES, **WITHIN}, {}, None, id="file-in-grace"),
        pytest.param({"problem": Reason.UNREADABLE, **PAST}, {}, None, id="unreadable-not-fixable"),
        pytest.param(
            {"problem": Reason.MISSING_COOKIES, **PAST, "read_error": "EMFILE"},
            {},
            None,
            id="daemon-cannot-read",
        ),
        pytest.param(
            {"last_validation": failed(Reason.BOT_DETECTION)},
            {},
            Reason.BOT_DETECTION,
            id="failed-validation",
        ),
        pytest.param(
            {"last_validation": failed(Reason.LOGGED_OUT, offline=True)},
            {},
            None,
            id="offline-failure-is-the-files",
        ),
        pytest.param(
            {"last_validation": failed(Reason.RATE_LIMITED)}, {}, None, id="not-fixable-failure"
        ),
        pytest.param({"last_validation": passed()}, {}, None, id="passed-validation"),
        pytest.param(
            {"last_validation": failed(Reason.BOT_DETECTION), "diagnosed": Reason.IP_FLAGGED},
            {},
            None,
            id="diagnosis-stands",
        ),
        pytest.param(
            {
                "last_validation": failed(Reason.BOT_DETECTION),
                "shared_diagnosis": Reason.IP_FLAGGED,
            },
            {},
            None,
            id="peers-diagnosis-stands",
        ),
        pytest.param(
            {"problem": Reason.LOGGED_OUT, **PAST, "diagnosed": Reason.IP_FLAGGED},
            {},
            Reason.LOGGED_OUT,
            id="diagnosis-leaves-file-problems",
        ),
        pytest.param(
            {"last_validation": failed(Reason.FORBIDDEN)},
            {"trigger_on": "bot_detection"},
            None,
            id="not-in-trigger-on",
        ),
        pytest.param(
            {"problem": Reason.LOGGED_OUT, **PAST, "last_validation": failed(Reason.BOT_DETECTION)},
            {},
            Reason.LOGGED_OUT,
            id="strongest-wins",
        ),
        pytest.param(
            {"problem": Reason.LOGGED_OUT, **PAST, "last_validation": failed(Reason.BOT_DETECTION)},
            {"trigger_on": "bot_detection"},
            Reason.BOT_DETECTION,
            id="filtered-before-strongest",
        ),
        pytest.param(ROTATION_DUE, {}, Reason.SCHEDULED_ROTATION, id="rotation-due"),
        pytest.param(ROTATION_AHEAD, {}, None, id="rotation-ahead"),
        pytest.param(ROTATION_DUE, {"rotate_after": 0}, None, id="rotation-off"),
        pytest.param(
            {**ROTATION_DUE, "diagnosed": Reason.IP_FLAGGED}, {}, None, id="rotation-diagnosed"
        ),
        pytest.param(EXPIRING, {}, Reason.EXPIRING_SOON, id="login-expiring"),
        pytest.param(EXPIRING, {"renew_before": 0}, None, id="renewal-off"),
    ],
)
def test_need(setup: dict[str, Any], cfg: dict[str, Any], expected: Reason | None) -> None:
    assert core.need(source(setup, **cfg), T0) is expected


# --- still_owed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owed", "setup", "expected"),
    [
        pytest.param(Owed(Reason.BOT_DETECTION, T0, "api", True), {}, True, id="forced"),
        pytest.param(Owed(Reason.BOT_DETECTION, T0, "cli"), {}, True, id="a-person-asked"),
        pytest.param(Owed(Reason.MANUAL, T0, "api"), {}, True, id="manual"),
        pytest.param(
            Owed(Reason.MISSING_COOKIES, T0, "file"),
            {"problem": Reason.MISSING_COOKIES, **PAST},
            True,
            id="file-still-missing",
        ),
        pytest.param(Owed(Reason.MISSING_COOKIES, T0, "file"), {}, False, id="file-back"),
        pytest.param(
            Owed(Reason.MISSING_COOKIES, T0, "file"),
            {"problem": Reason.MISSING_COOKIES, **WITHIN},
            False,
            id="file-back-in-grace",
        ),
        pytest.param(
            Owed(Reason.MISSING_COOKIES, T0, "file"),
            {"problem": Reason.CORRUPT_COOKIES, **PAST},
            False,
            id="another-file-problem",
        ),
        pytest.param(
            Owed(Reason.SCHEDULED_ROTATION, T0, "rotation"), ROTATION_DUE, True, id="rotation-due"
        ),
        pytest.param(
            Owed(Reason.SCHEDULED_ROTATION, T0, "rotation"),
            ROTATION_AHEAD,
            False,
            id="rotation-done",
        ),
        pytest.param(Owed(Reason.BOT_DETECTION, T0, "report"), {}, True, id="no-validation-since"),
        pytest.param(
            Owed(Reason.BOT_DETECTION, T0, "report"),
            {"last_validation": passed(at=T0 + 5)},
            False,
            id="passed-since",
        ),
        pytest.param(
            Owed(Reason.BOT_DETECTION, T0, "report"),
            {"last_validation": passed(at=T0 - 5)},
            True,
            id="passed-before",
        ),
        pytest.param(
            Owed(Reason.BOT_DETECTION, T0, "report"),
            {"last_validation": passed(at=T0 + 5, offline=True)},
            True,
            id="offline-pass-says-nothing",
        ),
        pytest.param(
            Owed(Reason.BOT_DETECTION, T0, "report"),
            {"last_validation": failed(Reason.BOT_DETECTION, at=T0 + 5)},
            True,
            id="failed-since",
        ),
    ],
)
def test_still_owed(owed: Owed, setup: dict[str, Any], expected: bool) -> None:
    assert core.still_owed(source(setup), owed, T0) is expected


# --- grace -------------------------------------------------------------------------------------

SMALLER = jar(None, size=1000, cookies=10)  # logged out, and smaller than the logged-in jar
SAME_SIZE = jar(None)  # logged out, as large as the logged-in jar
EXPIRED_SMALLER = jar(None, size=1000, cookies=10, login_expired=True)
DENIED = CookieReport(path=MISSING.path, exists=True, denied=True, error="permission denied")


@pytest.mark.parametrize(
    ("before", "report", "cfg", "grace"),
    [
        pytest.param([jar("A")], MISSING, {}, 60.0, id="missing"),
        pytest.param([], MISSING, {}, 60.0, id="missing-at-start"),
        pytest.param([jar("A")], MISSING, {"missing_grace": 5}, 5.0, id="missing-configured"),
        pytest.param([jar("A")], CORRUPT, {}, 30.0, id="corrupt"),
        pytest.param([jar("A")], CORRUPT, {"corrupt_grace": 0}, 0.0, id="corrupt-no-grace"),
        pytest.param([jar("A")], SMALLER, {}, 10.0, id="logged-out-and-shrank"),
        pytest.param([jar("A")], EXPIRED_SMALLER, {}, 10.0, id="expired-and-shrank"),
        pytest.param([jar("A")], SAME_SIZE, {}, 0.0, id="logged-out-same-size"),
        pytest.param([], SMALLER, {}, 0.0, id="logged-out-at-start"),
        # An upload written in place passes through an unparseable file first: the shrink is
        # measured against the last logged-in jar, not the corrupt one just before (D10).
        pytest.param([jar("A"), CORRUPT], SMALLER, {}, 10.0, id="shrank-since-last-good"),
        pytest.param([jar("A")], DENIED, {}, 0.0, id="unreadable"),
    ],
)
def test_grace(
    before: list[CookieReport], report: CookieReport, cfg: dict[str, Any], grace: float
) -> None:
    h = Harness(settings(**cfg))
    for i, seen in enumerate(before):
        h.file(seen, at=T0 + i)
    at = T0 + 100
    fx = h.file(report, at=at)
    assert h.src.problem is not None
    armed = [a.at for a in of(fx, Arm) if a.key == "grace"]
    assert armed == ([at + grace] if grace > 0 else [])
    assert h.src.problem_confirm_at == at + grace


# --- ambiguous ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "text", "expected"),
    [
        pytest.param(Reason.FORBIDDEN, None, True, id="a-403"),
        pytest.param(Reason.FORBIDDEN, "HTTP Error 403: Forbidden", True, id="a-403-text"),
        pytest.param(Reason.AUTH_REQUIRED, "ERROR: Private video. Sign in", True, id="private"),
        pytest.param(Reason.AUTH_REQUIRED, "This video is private", True, id="video-is-private"),
        pytest.param(
            Reason.AUTH_REQUIRED, "Join this channel to get access", True, id="members-only"
        ),
        pytest.param(Reason.AUTH_REQUIRED, "Sign in to confirm your age", True, id="age-gate"),
        pytest.param(Reason.AUTH_REQUIRED, "age-restricted video", True, id="age-restricted"),
        pytest.param(
            Reason.AUTH_REQUIRED,
            "may be inappropriate for some users",
            True,
            id="inappropriate",
        ),
        pytest.param(Reason.AUTH_REQUIRED, "PRIVATE VIDEO", True, id="any-case"),
        pytest.param(Reason.AUTH_REQUIRED, "Sign in to view this", False, id="plain-sign-in"),
        pytest.param(Reason.AUTH_REQUIRED, None, False, id="auth-without-text"),
        pytest.param(Reason.BOT_DETECTION, "private video", False, id="bot-wall"),
        pytest.param(Reason.LOGGED_OUT, "members only", False, id="logged-out"),
    ],
)
def test_ambiguous(reason: Reason, text: str | None, expected: bool) -> None:
    assert core.ambiguous(reason, text) is expected


# --- resolve_reason ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "error", "expected"),
    [
        # Without an error it is a person asking, whatever the word.
        pytest.param("manual_trigger", None, Reason.MANUAL, id="documented-word"),
        pytest.param("test", None, Reason.MANUAL, id="test"),
        pytest.param("logged_out", None, Reason.MANUAL, id="a-reason-word"),
        pytest.param("", None, Reason.MANUAL, id="no-word"),
        # With one, the error text is the evidence...
        pytest.param("manual", BOT, Reason.BOT_DETECTION, id="error-classified"),
        pytest.param("logged_out", BOT, Reason.BOT_DETECTION, id="error-over-word"),
        # ...and the caller's word names it only when the error can't.
        pytest.param("logged_out", "unknown thing", Reason.LOGGED_OUT, id="word-when-error-cannot"),
        pytest.param(" Logged_Out ", "", Reason.LOGGED_OUT, id="empty-error-word-trimmed"),
        pytest.param(BOT, "unknown thing", Reason.BOT_DETECTION, id="word-classified"),
        pytest.param("whatever", "unknown thing", Reason.OTHER, id="nothing-known"),
    ],
)
def test_resolve_reason(reason: str, error: str | None, expected: Reason) -> None:
    assert core.resolve_reason(reason, error) is expected
