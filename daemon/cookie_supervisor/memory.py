"""What the daemon remembers of the core's state across a restart: its mapping to and from the
state file's JSON (state.py writes and reads the file itself).

Per source, the login sessions seen (fingerprint → first seen; so a restart neither makes an old
session new nor forgets its age), how long the ones seen to die lived (the learned renewal), the
standing diagnosis, the refresh owed while Redis was away, the upload nobody could judge that was
excused (N30); and the record of finished jobs already judged. What the file holds is trusted no
further than its shape: each entry whose values are not of the right type and range is dropped
with one log line, never the daemon.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Any

from cookie_supervisor import core, model
from cookie_supervisor.classify import Reason
from cookie_supervisor.metrics import DIAGNOSES
from cookie_supervisor.state import time_of

log = logging.getLogger("cookie_supervisor.state")  # the state file's lines, as before
_FINGERPRINT = 128  # characters; ours are 64 hex digits
_REASONS = frozenset(r.value for r in Reason)
_DIAGNOSES = frozenset(r.value for r in DIAGNOSES)
JUDGED_MAX = 10_000  # keys of finished jobs already booked (the core keeps Redis's window)
JUDGED_KEY_MAX = 1024  # characters: a job id and its end


@dataclass(slots=True)
class CoreMemory:
    """The core's state as the state file's `Memory` (state.Saver): restored once at start,
    snapshotted at each write."""

    state: core.State

    def restore(self, data: dict[str, Any]) -> None:
        restore(self.state, data)

    def snapshot(self, key: bytes, **extra: Any) -> dict[str, Any]:
        return snapshot(self.state, key, **extra)


def snapshot(state: core.State, key: bytes, **extra: Any) -> dict[str, Any]:
    sources = {
        name: {
            "sessions": dict(src.sessions),
            "owed": src.owed.as_dict() if src.owed else None,
            "diagnosed": src.diagnosed.value if src.diagnosed else None,
            "reset_by": src.reset_by,
            "excused": src.excused,
            # oldest first: fingerprint → [seconds lived, ended at]
            "lifetimes": {fp: [x.seconds, x.ended_at] for fp, x in src.lifetimes.items()},
            "unmeasured": src.unmeasured,
        }
        for name, src in state.sources.items()
    }
    # A job whose verification is still open is not judged yet, as far as a restart goes: the
    # next process books it again and verifies it (the open verification itself is not kept).
    open_ = {src.verifying.key for src in state.sources.values() if src.verifying is not None}
    judged = sorted(state.judged - open_) if state.judged is not None else None
    return {"key": key.hex(), "sources": sources, "judged": judged, **extra}


def restore(state: core.State, data: dict[str, Any]) -> None:
    """Put what the file remembers back into the core's state; drop (and log) what is malformed."""
    state.judged = _judged(data.get("judged"))
    stored = data.get("sources")
    if not isinstance(stored, dict):
        return
    for name, src in state.sources.items():
        entry = stored.get(name)
        if not isinstance(entry, dict):
            continue
        src.sessions = _sessions(name, entry.get("sessions"))
        src.owed = _owed(name, entry.get("owed"))
        # a diagnosis stands across a restart until a validation contradicts it
        diagnosed = entry.get("diagnosed")
        src.diagnosed = Reason(diagnosed) if diagnosed in _DIAGNOSES else None
        reset_by = entry.get("reset_by")  # a fingerprint: a restart does not make it reset again
        src.reset_by = reset_by if isinstance(reset_by, str) and len(reset_by) <= 128 else None
        # a job id: a restart does not excuse a second upload nobody could judge (N30)
        excused = entry.get("excused")
        src.excused = excused if isinstance(excused, str) and len(excused) <= 1024 else None
        src.lifetimes = _lifetimes(name, entry.get("lifetimes"))
        unmeasured = entry.get("unmeasured")
        if isinstance(unmeasured, str) and 0 < len(unmeasured) <= _FINGERPRINT:
            src.unmeasured = unmeasured


def _lifetimes(source: str, raw: Any) -> dict[str, model.Lifetime]:
    """The last LIFETIMES_KEPT well-formed lifetimes, in the file's order (oldest first)."""
    if not isinstance(raw, dict):
        if raw is not None:
            _dropped(source, "session lifetimes", "not an object")
        return {}
    good: dict[str, model.Lifetime] = {}
    latest = list(raw.items())[-model.LIFETIMES_KEPT :]
    for fp, value in latest:
        if not 0 < len(fp) <= _FINGERPRINT or not isinstance(value, list) or len(value) != 2:
            continue
        seconds, ended = time_of(value[0]), time_of(value[1])
        if seconds is not None and ended is not None:
            good[fp] = model.Lifetime(seconds, ended)
    if bad := len(latest) - len(good):
        _dropped(source, f"{bad} session lifetime(s)", "not a fingerprint and a duration")
    return good


def _sessions(source: str, raw: Any) -> dict[str, float]:
    """The newest SESSIONS_KEPT well-formed sessions, oldest first (the core prunes the oldest).

    Cut here, in one pass: a file with thousands of sessions costs O(n log k) once, not a
    quadratic pruning in the core at the first inspection.
    """
    if not isinstance(raw, dict):
        if raw is not None:
            _dropped(source, "sessions", "not an object")
        return {}
    good: list[tuple[float, str]] = []
    bad = 0
    for fp, at in raw.items():
        when = time_of(at)
        if when is None or not 0 < len(fp) <= _FINGERPRINT:
            bad += 1
            continue
        good.append((when, fp))
    if bad:
        _dropped(source, f"{bad} session(s)", "not a fingerprint and a time since 1970")
    kept = heapq.nlargest(model.SESSIONS_KEPT, good)
    return {fp: when for when, fp in reversed(kept)}


def _judged(raw: Any) -> set[str] | None:
    """The record of finished jobs already booked; None (book nothing found at start as new)
    when the file has none or it is malformed: a lost record must not re-book old failures."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > JUDGED_MAX:
        log.warning("state file: dropped the record of judged jobs: not a list of job keys")
        return None
    keys = {k for k in raw if isinstance(k, str) and 0 < len(k) <= JUDGED_KEY_MAX}
    if len(keys) != len(set(map(str, raw))):
        log.warning("state file: dropped %d malformed judged job keys", len(raw) - len(keys))
    return keys


def _owed(source: str, raw: Any) -> model.Owed | None:
    if raw is None:
        return None
    why = _owed_problem(raw)
    if why is not None:
        _dropped(source, "the owed refresh", why)
        return None
    at = float(raw["at"])
    return model.Owed(Reason(raw["reason"]), at, raw["origin"], raw.get("force", False))


def _owed_problem(raw: Any) -> str | None:
    """What makes a stored owed refresh unusable, or None when every field is well-formed."""
    if not isinstance(raw, dict):
        return "not an object"
    if raw.get("reason") not in _REASONS:
        return "unknown reason"
    if time_of(raw.get("at")) is None:
        return "its time is not a time since 1970"
    if not isinstance(raw.get("origin"), str) or len(raw["origin"]) > 64:
        return "its origin is not a short text"
    if not isinstance(raw.get("force", False), bool):
        return "force is not true or false"
    return None


def _dropped(source: str, what: str, why: str) -> None:
    log.warning("state file: dropped %s of source %s: %s", what, source, why)
