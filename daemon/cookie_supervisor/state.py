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
import json
import logging
import math
import os
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from cookie_supervisor.background import Background
from cookie_supervisor.classify import scrub_tree

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


class Memory(Protocol):
    """What the file holds of the daemon's decisions (memory.py maps the core's state): put back
    once at start, taken at every write."""

    def restore(self, data: dict[str, Any]) -> None: ...

    def snapshot(self, key: bytes, **extra: Any) -> dict[str, Any]: ...


M = TypeVar("M", bound=Memory)


class Saver(Generic[M]):
    """Writes the state file off the event loop. A burst of changes is one write (`soon`, after
    SAVE_DELAY); what must be on disk before the daemon goes on waits for its write (`now`).
    Writes run one at a time, in order; callers waiting together share one. Every part other
    owners keep in the file (the outbox, the incidents, the cursors) is registered by name."""

    def __init__(
        self,
        store: StateFile,
        memory: M,
        key: bytes,
        delay: float = SAVE_DELAY,
        stored: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.memory = memory
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
    def load(cls, store: StateFile, memory: M) -> Saver[M]:
        """Read the file, put what it remembers back into `memory`, and keep writing it from
        there."""
        stored = store.load()
        memory.restore(stored)
        return cls(store, memory, fingerprint_key(stored), stored=stored)

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
        return scrub_tree(self.memory.snapshot(self.key, **extra))  # type: ignore[no-any-return]

    def _write(self, data: dict[str, Any]) -> None:
        try:
            with self._write_lock:  # one writer of the temporary file at a time
                self.store.save(data)
        except OSError as exc:
            log.error(
                "cannot write state file: %s", exc.strerror, extra={"path": str(self.store.path)}
            )
