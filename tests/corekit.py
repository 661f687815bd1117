"""The core's test harness: a core state on a fake clock, jars as cookiefile.inspect reports
them, and the small readers of effects every tests/test_core_*.py uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from cookie_supervisor import core, verdict
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.core import (
    Count,
    Enqueue,
    FileInspected,
    QueueObserved,
    RefreshAnswered,
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


# --- defect 6: verification waits for a validation of the new session --------------------------


def completed_refresh(h: Harness) -> None:
    h.file(jar("A"))
    ask = enqueued(h.validated(False, Reason.BOT_DETECTION))
    h.answer(ask, "enqueued", job_id="9")
    h(QueueObserved({"main": "9"}))


def with_problem(report: CookieReport, reason: Reason) -> CookieReport:
    class Fixed(CookieReport):
        def problem(self) -> Reason | None:
            return reason

    return Fixed(**{f: getattr(report, f) for f in report.__dataclass_fields__})


# --- issue 16 D2: a standing diagnosis is honoured until something newer contradicts it ---------


def diagnosed_by(h: Harness, diagnosis: Reason = Reason.IP_FLAGGED) -> list[core.Effect]:
    return h.validated(
        False, diagnosis, media_reason=Reason.BOT_DETECTION, account_ok=True, diagnosis=diagnosis
    )


# --- issue 16 point 4: the validation pipeline is pure -----------------------------------------


def probe_said(kind: verdict.ProbeKind, url: str, reason: Reason | None) -> verdict.ProbeSaid:
    return verdict.ProbeSaid(kind, url, reason)


YT = "https://www.youtube.com/watch?v=x"
ACCOUNT = "https://www.youtube.com/playlist?list=LL"
YT2 = "https://www.youtube.com/watch?v=y"


def failed_validation(reason: Reason) -> Validation:
    return Validation(False, reason, T0, T0, "schedule")


# --- issue 16, D3 / N2 / D14 (verdicts): every job ends with one true verdict -------------------


def uploaded(h: Harness, fp: str = "B") -> None:
    """Job 9 completed at T0 + 100 (deadline T0 + 700); its upload `fp` lands at T0 + 120."""
    completed_refresh(h)
    h(QueueObserved({"main": None}, (job("9", at=T0 + 100, created=T0),)), at=T0 + 100)
    h.file(jar(fp), at=T0 + 120)
