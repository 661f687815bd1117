"""The validation pipeline's pure rules: which yt-dlp runs a validation makes (`plan_validation`,
`next_probe`), what each says for the cookies (`settles`, `wants_account_check`,
`wants_diagnosis`) and the verdict of them all (`conclude`, `validation_of`,
`offline_validation`). The runtime's validator runs yt-dlp; every choice on the way is here,
where the core, the simulator and the tables reach it without the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cookie_supervisor.classify import Reason, diagnose, redact
from cookie_supervisor.model import (
    CookieReport,
    Policy,
    Validation,
)

NOT_HONOURED = frozenset({Reason.LOGGED_OUT, Reason.COOKIES_ROTATED})
_MEDIA_DIAGNOSED = frozenset({Reason.BOT_DETECTION, Reason.FORBIDDEN, Reason.PO_TOKEN_REQUIRED})


def settles(ok: bool, reason: Reason | None) -> bool:
    """Does one media probe speak for the cookies? A pass or a fixable failure does; a removed
    video or an outage lets the next validation URL speak instead."""
    return ok or (reason is not None and reason.fixable)


def wants_account_check(media: Reason | None) -> bool:
    """The account check adds nothing when the media probe failed for a reason that is not the
    cookies' (the network is down: the account check would say the same)."""
    return media is None or media.fixable


# What stops the account check before YouTube looks at the session: a dead session is answered
# "The playlist does not exist" (logged_out), so the bot wall there says nothing about the cookies.
WALLS = frozenset({Reason.BOT_DETECTION, Reason.IP_FLAGGED})


def wants_diagnosis(
    media: Reason | None, account_ok: bool | None, asked: bool, account: Reason | None = None
) -> bool:
    """Probe once more without cookies? Only when a media failure may not be the cookies': asked
    for, the account check passed (the session is honoured), a PO-token notice, or the wall
    stopped the account check too (`account`, its failure): then only a guest tells an address
    YouTube blocks from a session it does not honour, with one yt-dlp run instead of a login."""
    if media not in _MEDIA_DIAGNOSED:
        return False
    walled = account_ok is False and account in WALLS
    return asked or account_ok is True or walled or media is Reason.PO_TOKEN_REQUIRED


def conclude(
    media: Reason | None,
    account: Reason | None,
    account_ran: bool,
    without: Reason | bool | None,
    fresh: bool = False,
) -> tuple[Reason | None, Reason | None]:
    """(verdict, diagnosis) from the media probe, the account check and the cookie-less probe.

    `without` is False when the cookie-less probe did not run, else its failure or None (passed).
    `fresh`: the session is a refresh's new login that was just `still_failing`.

    Failing with cookies and working without is `account_restricted` only for a session known to
    be honoured: the account check passed, or it is a fresh login. A session of unknown standing
    (no account check) fails the same way when YouTube no longer honours it, which fresh
    cookies do fix: that is the cookies' failure, and a refresh's fresh session tells (N18).
    Failing the same way without cookies is the address (or the PO token) whatever the account
    check said, the wall there included (N27): YouTube did not look at the session.
    """
    if account_ran and account in NOT_HONOURED:
        return account, None  # the session is not honoured: that is the cookies, whatever else
    if media is None:
        return None, None
    if without is False:
        return media, None
    found = diagnose(media, without if isinstance(without, Reason) else None)
    honoured = (account_ran and account is None) or fresh
    if found is Reason.ACCOUNT_RESTRICTED and not honoured:
        return media, None
    return (found, found) if found is not None else (media, None)


# The pipeline as data: the runtime asks `next_probe` what to run until it says nothing more, and
# `validation_of` reads the parts. Every choice on the way is here, pure, where the simulator and
# the tables reach it; the runtime only runs yt-dlp.

ProbeKind = Literal["media", "account", "bare"]  # bare: the media probe again, without cookies


@dataclass(frozen=True, slots=True)
class ProbeRun:
    """One yt-dlp run the pipeline wants next."""

    kind: ProbeKind
    url: str


@dataclass(frozen=True, slots=True)
class ProbeSaid:
    """What one run said: its failure reason (None: it passed), redacted message, and whether
    yt-dlp found account cookies."""

    kind: ProbeKind
    url: str
    reason: Reason | None
    message: str = ""
    account_cookies: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class ValidationPlan:
    media_urls: tuple[str, ...]
    account_url: str | None  # None: no account check
    diagnose: bool  # asked for, or a diagnosis stands and must be confirmed or dropped


def plan_validation(policy: Policy, diagnose: bool) -> ValidationPlan:
    """What a validation of a source may run: its validation URLs, its account check (None:
    none), and whether to probe once more without cookies when the media probe fails."""
    return ValidationPlan(policy.validation_urls, policy.account_check_url, diagnose)


def next_probe(plan: ValidationPlan, said: tuple[ProbeSaid, ...]) -> ProbeRun | None:
    """The next run, or None when the parts are complete."""
    media = [p for p in said if p.kind == "media"]
    if len(media) < len(plan.media_urls) and not (
        media and settles(media[-1].ok, media[-1].reason)
    ):
        return ProbeRun("media", plan.media_urls[len(media)])
    if not media:
        return None
    last = media[-1]
    account = next((p for p in said if p.kind == "account"), None)
    if account is None and plan.account_url and wants_account_check(last.reason):
        return ProbeRun("account", plan.account_url)
    account_ok = None if account is None else account.ok
    ran_bare = any(p.kind == "bare" for p in said)
    wall = None if account is None else account.reason
    if not ran_bare and wants_diagnosis(last.reason, account_ok, plan.diagnose, wall):
        return ProbeRun("bare", last.url)
    return None


def validation_of(
    said: tuple[ProbeSaid, ...], started: float, at: float, trigger: str, limit: int = 500
) -> Validation:
    """The verdict of a complete run of the pipeline (see `conclude`)."""
    media = [p for p in said if p.kind == "media"][-1]
    account = next((p for p in said if p.kind == "account"), None)
    bare = next((p for p in said if p.kind == "bare"), None)
    without: Reason | bool | None = False if bare is None else bare.reason
    verdict, diagnosis = conclude(
        media.reason,
        account.reason if account else None,
        account is not None,
        without,
        fresh=trigger == "diagnosis",  # asked after a refresh's new session was still_failing
    )
    parts = [media.message, account.message if account else ""]
    return Validation(
        verdict is None,
        verdict,
        started,
        at,
        trigger,
        url=media.url,
        message=redact(" | ".join(p for p in parts if p), limit),
        account_cookies=media.account_cookies,
        media_reason=media.reason,
        account_ok=None if account is None else account.ok,
        bare_ok=None if bare is None else bare.ok,
        diagnosis=diagnosis,
    )


def offline_validation(
    report: CookieReport, cfg: Policy, started: float, at: float, trigger: str
) -> Validation | None:
    """The verdict before any probe: the daemon cannot read the jar (no verdict at all), the
    jar's own problem, or — with no validation URLs — the offline check is all. None: probe."""
    if report.os_error is not None:
        message = f"the daemon cannot read the file: {report.os_error}"
        return Validation(
            False,
            Reason.OTHER,
            started,
            at,
            trigger,
            offline=True,
            message=message,
            read_error=report.os_error,
        )
    if (problem := report.problem_at(started)) is not None:
        message = f"offline check: {problem.value}"
        return Validation(False, problem, started, at, trigger, offline=True, message=message)
    if not cfg.validation_urls:  # downloads off
        return Validation(True, None, started, at, trigger, offline=True)
    return None
