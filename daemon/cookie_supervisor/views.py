"""What the daemon shows of its sources: the status view, the one health verdict, STATUS=.

- `status`: one source as the API's `cookies-status` and `sources` answer it (and the CLI prints);
- `verdict`: the one judgement of a source's cookies — OK, or the reason they fail, whether fresh
  cookies can fix it, and whether there is no verdict at all (the daemon cannot read the file).
  The daemon serves it in the status view (`verdict`), `cookie-supervisor check` prints it and
  turns it into a monitoring exit code, the STATUS= line below words it;
- `health_line`: the STATUS= line systemd shows, e.g. "2 sources: main ok, alt refresh pending":
  the verdict, with what the daemon is doing about it first;
- `StateView`: these reads as the API and the CLI make them of the running daemon (the
  supervisor is one), by source name.

The health gate (`/api/cookies/health`) is another question, answered by the core as it steps:
are the cookies usable, and since when (`core.track_usable`).

Views only read the core's state; nothing here changes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from cookie_supervisor.model import CookieReport, Now


class UnknownSource(KeyError):
    pass


class StateView:
    """The reads the API and the CLI make of the core's state: from it alone, no I/O. Dates on
    the wall `clock`, intervals on `mono`."""

    def __init__(
        self,
        state: core.State,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.clock = clock  # dates: wall time
        self.mono = mono  # intervals: a stepped wall clock cannot stretch them

    def now(self) -> core.Now:
        return core.Now(self.mono(), self.clock())

    @property
    def sources(self) -> dict[str, core.Source]:
        return self.state.sources

    @property
    def redis_up(self) -> bool:
        return self.state.redis_up is True

    def source(self, name: str) -> core.Source:
        try:
            return self.state.sources[name]
        except KeyError:
            raise UnknownSource(name) from None

    def usable(self, name: str | None) -> tuple[str, core.Usable]:
        """The health gate's answer: the named source's usability, or without a name the one
        that decides for all (the worst)."""
        if not name:
            return core.worst_usable(self.sources)
        return name, self.source(name).usable or core.Usable(core.NOT_INSPECTED, None)

    def status(self, source: str) -> dict[str, Any]:
        """The source's status view (`status`): what the API and the CLI show."""
        return status(self.source(source), self.redis_up, self.now())


@dataclass(frozen=True, slots=True)
class Verdict:
    """A source's cookies: OK, else why not. `reason` is the file's problem, else the last
    validation's failure; with `unknown` (the daemon cannot read the file) there is no verdict
    on the cookies at all."""

    ok: bool
    reason: str | None = None
    fixable: bool = False
    unknown: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "fixable": self.fixable,
            "unknown": self.unknown,
        }


def verdict(src: core.Source) -> Verdict:
    """The file as it is now outranks an older validation; an OS error reading the file is the
    daemon's own trouble (EMFILE, EIO), never a verdict about the cookies."""
    if src.read_error is not None:
        return Verdict(False, f"read_error {src.read_error}", unknown=True)
    if src.problem is not None:
        return Verdict(False, src.problem.value, src.problem.fixable)
    v = src.last_validation
    if v is not None and not v.ok:
        reason = v.reason or Reason.OTHER
        return Verdict(False, reason.value, reason.fixable)
    return Verdict(True)


def health_line(state: core.State, now: Now) -> str:
    """Cookie health for systemd's STATUS=, e.g. "2 sources: main ok, alt refresh pending"."""
    parts = [f"{name} {_health_word(src, now)}" for name, src in state.sources.items()]
    head = f"{len(parts)} source{'s' if len(parts) != 1 else ''}: "
    redis = "redis down; " if state.redis_up is False else ""
    return redis + head + ", ".join(parts)


def _health_word(src: core.Source, now: Now) -> str:
    """The verdict in a word or two; what the daemon is doing about it (a refresh on its way or
    being verified, a diagnosis, a backoff) is named before a failing validation."""
    judged = verdict(src)
    if judged.unknown:
        return f"unreadable by the daemon ({src.read_error})"
    if src.pending_job is not None:
        return "refresh pending"
    if src.owed is not None:
        return "refresh owed"
    if src.verifying is not None:
        return "verifying refresh"
    if src.problem is not None:  # the verdict's reason is the file's problem
        return src.problem.value.replace("_", " ")
    if src.diagnosis is not None:
        return src.diagnosis.value.replace("_", " ")
    if src.backoff_ends(now.wall) is not None:
        return "backing off"
    if not judged.ok:
        return f"failing ({judged.reason})"
    return "ok"


def status(src: core.Source, redis_up: bool, clocks: Now) -> dict[str, Any]:
    """One source's status, as the API answers it (the original `cookies-status` keys first)."""
    r = src.report or CookieReport(path=src.settings.cookies_file, exists=False)
    now = clocks.wall
    rotation = src.rotation()
    return {
        "source": src.name,
        "configured": True,
        "path": str(src.settings.cookies_file),
        "exists": r.exists,
        "valid": r.valid,
        "error": r.error,
        "problem": src.problem.value if src.problem else None,
        "read_error": src.read_error,
        "size_bytes": r.size if r.exists else None,
        "last_modified": r.mtime if r.exists else None,
        "age_seconds": round(now - r.mtime, 3) if r.exists and r.mtime is not None else None,
        "secure_permissions": r.secure_permissions,
        "cookies": r.cookies,
        "malformed_lines": r.malformed_lines,
        "login_cookies": list(r.login_cookies),
        "login_expires_at": r.login_expires_at,
        "logged_in": r.logged_in,
        "session_changed_at": src.session_since,
        "rotation_due_at": rotation[0] if rotation else None,
        # sessions seen to die: how many are known, the median of the last 3, and the
        # renewal it calls for (2/3 of it after the current session arrived)
        "session_lifetimes": {
            "known": len(src.lifetimes),
            "median_seconds": core.lifetime_median(src),
            "learned_renewal_at": core.learned_renewal(src),
        },
        "refresh": {
            "pending_job": src.pending_job if redis_up else None,
            "owed": src.owed.reason.value if src.owed else None,
            "verifying_job": src.verifying.job_id if src.verifying else None,
            "success_ratio": src.success_ratio,
            "consecutive_failures": src.failures,
            "backoff_until": src.backoff_ends(now),
            "needed": (n.value if (n := core.need(src, clocks)) else None),
        },
        "last_validation": src.last_validation.as_dict() if src.last_validation else None,
        "diagnosis": src.diagnosis.value if src.diagnosis else None,
        "verdict": verdict(src).as_dict(),
        "message": _file_message(r, src.read_error),
    }


def _file_message(r: CookieReport, read_error: str | None) -> str:
    if read_error:
        return f"The daemon cannot read the cookies file ({read_error})"
    if not r.exists:
        return "Cookies file not found"
    if r.error:
        return f"Cookies file unusable: {r.error}"
    if not r.logged_in:
        return "Cookies file found, but yt-dlp would not be logged in"
    return "Cookies file found"
