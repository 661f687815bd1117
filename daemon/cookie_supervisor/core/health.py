"""Whether a source's cookies are usable: the health gate's answer, kept as the core steps. (The
one health verdict and the STATUS= words are views.py's.)"""

from __future__ import annotations

from cookie_supervisor.classify import Reason
from cookie_supervisor.core.source import Source
from cookie_supervisor.model import (
    NOT_INSPECTED,
    Now,
    Usable,
    as_now,
)


def unusable_reason(src: Source) -> str | None:
    """Why the cookies are not usable now, or None: the file exists and is logged in, and the
    last conclusive validation on this session passed or none ran yet. A validation that
    started before the current session arrived judged other cookies; an OS error reading the
    file is the daemon's trouble (the last real report stands); an IP block or a PO-token
    requirement is not the cookies' (inconclusive, so never a verdict)."""
    if src.report is None:
        return NOT_INSPECTED
    if src.problem is not None:  # missing, unparseable, logged out, expired, unreadable…
        return src.problem.value
    v, since = src.verdict, src.session_since
    if v is not None and not v.ok and (since is None or v.started_at >= since):
        return (v.reason or Reason.OTHER).value
    return None


def track_usable(src: Source, now: Now | float) -> None:
    """Keep `src.usable` and the time its answer last changed: the health gate reads only this."""
    now = as_now(now)
    reason = unusable_reason(src)
    if src.usable is None or src.usable.reason != reason:
        src.usable = Usable(reason, now.wall)


def worst_usable(sources: dict[str, Source]) -> tuple[str, Usable]:
    """The source that decides for all: the worst unusable one (strongest reason, then the
    longest unusable), else the usable one that became so last (all have been since then)."""

    def badness(item: tuple[str, Usable]) -> tuple[int, float]:
        u = item[1]
        since = u.since or 0.0
        return (u.rank, since if u.ok else -since)

    seen = [(name, src.usable or Usable(NOT_INSPECTED, None)) for name, src in sources.items()]
    return max(seen, key=badness)
