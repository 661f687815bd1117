"""The state file: what the daemon must remember across a restart, in one JSON document.

Per source, the login sessions seen (fingerprint → first seen; so a restart neither makes an old
session new nor forgets its age), how long the ones seen to die lived (the learned renewal), and
the refresh owed while Redis was away; the key that makes
fingerprints comparable across restarts; the webhook outbox and the journal cursors. Decisions
shared by several daemons (pending job, cooldown, backoff) live in Redis, not here.

Written atomically (a fresh temporary file created with O_EXCL|O_NOFOLLOW, fsync, rename, fsync
of the directory) with mode 0600: a symlink planted at the temporary name is never written
through. A corrupt, unreadable, oversized, special (FIFO, device) or newer-schema file is logged
once and ignored: losing it costs a little history, never the daemon. What it holds is trusted no
further than its shape: a number that is not finite (NaN, Infinity, `10**400`) reads as null, and
each entry whose values are not of the right type and range is dropped with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import json
import logging
import math
import os
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cookie_supervisor import core, model
from cookie_supervisor.background import Background
from cookie_supervisor.classify import Reason, scrub_tree
from cookie_supervisor.metrics import DIAGNOSES

log = logging.getLogger(__name__)
SCHEMA = 1
SAVE_DELAY = 1.0  # writes are coalesced: a burst of changes is one write
FILENAME = "state.json"
# Far above what the daemon writes (32 sessions a source, bounded outboxes and cursors), far
# below what would hurt to read: a larger file is not ours to trust.
MAX_BYTES = 16 * 1024 * 1024
# An epoch time the daemon could have written: from 1970 up to the year 9999.
LATEST = 253_370_764_800.0
_DIGITS = 20  # an integer with more digits is no time, count or offset of ours
_FINGERPRINT = 128  # characters; ours are 64 hex digits
_REASONS = frozenset(r.value for r in Reason)
_DIAGNOSES = frozenset(r.value for r in DIAGNOSES)
JUDGED_MAX = 10_000  # keys of finished jobs already booked (the core keeps Redis's window)
JUDGED_KEY_MAX = 1024  # characters: a job id and its end


class Refused(ValueError):
    """The file is not one to read at all (special, oversized)."""


class StateFile:
    """One JSON document under the state directory; `None` directory keeps nothing."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / FILENAME if directory is not None else None

    def load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            raw = _read_regular(self.path, MAX_BYTES)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state file ignored: %s", _why(exc), extra={"path": str(self.path)})
            return {}
        try:
            data = parse(raw)
        except (ValueError, RecursionError) as exc:
            log.warning("state file ignored: %s", _why(exc), extra={"path": str(self.path)})
            return {}
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            log.warning("state file ignored: unknown schema", extra={"path": str(self.path)})
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the file atomically; raises OSError for the caller to log."""
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps({**data, "schema": SCHEMA}, separators=(",", ":")).encode()
        tmp = self.path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
        fd = _create(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path.parent)


def _create(tmp: Path) -> int:
    """A new 0600 file at `tmp`, never an existing one and never through a symlink.

    Whatever holds the name already (a file a killed writer left, a planted symlink) is removed
    (unlink does not follow a link) and the creation tried once more; a second loss of the race
    is an OSError for the caller.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        os.unlink(tmp)
        return os.open(tmp, flags, 0o600)


def _read_regular(path: Path, limit: int) -> bytes:
    """The file's bytes if it is a regular file of at most `limit` bytes.

    O_NONBLOCK: a FIFO at the path must not wait for a writer; the type and size are checked on
    the opened descriptor, so nothing swapped in between a check and the open is read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused("not a regular file")
        if info.st_size > limit:
            raise Refused(f"larger than {limit} bytes")
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while we read
        raise Refused(f"larger than {limit} bytes")
    return data


def parse(raw: bytes) -> Any:
    """JSON where every number is finite and of sane size: anything else reads as null."""
    return json.loads(raw, parse_constant=_null, parse_int=_int, parse_float=_float)


def _null(text: str) -> None:
    return None  # NaN, Infinity, -Infinity


def _int(text: str) -> int | None:
    return int(text) if len(text.lstrip("-")) <= _DIGITS else None


def _float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def time_of(value: Any) -> float | None:
    """An epoch time the daemon could have stored, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    at = float(value)
    return at if math.isfinite(at) and 0.0 <= at <= LATEST else None


def fingerprint_key(data: dict[str, Any]) -> bytes:
    """The key of the session fingerprints: the stored one, else a new one (stored next save)."""
    raw = data.get("key")
    if isinstance(raw, str) and len(raw) == 64:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(raw)
    return secrets.token_bytes(32)


def snapshot(state: core.State, key: bytes, **extra: Any) -> dict[str, Any]:
    sources = {
        name: {
            "sessions": dict(src.sessions),
            "owed": src.owed.as_dict() if src.owed else None,
            "diagnosed": src.diagnosed.value if src.diagnosed else None,
            "reset_by": src.reset_by,
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


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "not valid JSON"


class Saver:
    """Writes the state file off the event loop. A burst of changes is one write (`soon`, after
    SAVE_DELAY); what must be on disk before the daemon goes on waits for its write (`now`).
    Writes run one at a time, in order; callers waiting together share one. Every part other
    owners keep in the file (the outbox, the incidents, the cursors) is registered by name."""

    def __init__(
        self,
        store: StateFile,
        state: core.State,
        key: bytes,
        delay: float = SAVE_DELAY,
        stored: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.key = key
        self.delay = delay
        self.stored = stored or {}  # what the file held at start: each part reads its own back
        self._parts: dict[str, Callable[[], Any]] = {}
        self._background = Background()
        self._armed = False
        self._lock = asyncio.Lock()
        self._write_lock = threading.Lock()
        self._wanted = self._done = 0

    @classmethod
    def load(cls, store: StateFile, state: core.State) -> Saver:
        """Read the file, put what it remembers of the sources back into `state`, and keep
        writing it from there."""
        stored = store.load()
        restore(state, stored)
        return cls(store, state, fingerprint_key(stored), stored=stored)

    def part(self, name: str, take: Callable[[], Any]) -> None:
        """Keep what `take()` returns under `name` in every write from now on."""
        self._parts[name] = take

    def soon(self) -> None:
        if self._armed or self.store.path is None:
            return
        self._armed = True
        asyncio.get_running_loop().call_later(self.delay, self._later)

    def _later(self) -> None:
        self._armed = False
        self._background.spawn(self.now())

    async def now(self) -> None:
        """Return once all that memory held at the call is on disk."""
        if self.store.path is None:
            return
        self._wanted += 1
        wanted = self._wanted
        async with self._lock:
            if self._done >= wanted:
                return  # a write that started after our call covered it
            taken = self._wanted
            data = self._snapshot()
            await asyncio.to_thread(self._write, data)
            self._done = taken

    async def aclose(self) -> None:
        """The last write, in place: what a stopping daemon knows is on disk when it ends."""
        await self._background.aclose()
        if self.store.path is not None:
            self._write(self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        extra = {name: take() for name, take in self._parts.items()}
        # the one redaction, like every other way out: nothing saved can carry a cookie value
        return scrub_tree(snapshot(self.state, self.key, **extra))  # type: ignore[no-any-return]

    def _write(self, data: dict[str, Any]) -> None:
        try:
            with self._write_lock:  # one writer of the temporary file at a time
                self.store.save(data)
        except OSError as exc:
            log.error(
                "cannot write state file: %s", exc.strerror, extra={"path": str(self.store.path)}
            )
