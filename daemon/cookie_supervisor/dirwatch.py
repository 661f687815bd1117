"""Directory watches for many files on one inotify instance, read on the event loop.

watchdog gives every watched directory an inotify instance and two threads of its own; with a
log file per directory, 150 log files would be 150 instances, past the default limit of 128 per
user (`fs.inotify.max_user_instances`), and 300 threads. This is one instance for them all, read
by the loop itself (no thread). Where inotify is missing (not Linux, or out of instances) `watch`
says so and the caller's slow poll is all there is.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

OnEvent = Callable[[str], None]  # the name (in the directory) something happened to; "" = any

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.inotify_init1  # noqa: B018 (present?)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class DirectoryWatch:
    """One inotify instance; `watch(directory, on_event)` adds a directory (once, however many
    callers), `on_event(name)` runs on the loop for every change to an entry of it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop  # the running loop at the first watch, unless given
        self._fd: int | None = None
        self._dirs: dict[int, tuple[Path, list[OnEvent]]] = {}  # wd → directory, callbacks
        self._wds: dict[Path, int] = {}

    @property
    def directories(self) -> int:
        return len(self._wds)

    def watching(self, directory: Path) -> bool:
        return directory in self._wds

    def watch(self, directory: Path, on_event: OnEvent) -> bool:
        """Watch `directory` for `on_event`; False when it cannot be (missing, no inotify)."""
        if self._fd is None and not self._open():
            return False
        assert self._fd is not None and _LIBC is not None
        wd = _LIBC.inotify_add_watch(self._fd, os.fsencode(directory), MASK)
        if wd < 0:
            number = ctypes.get_errno()
            if number not in (errno.ENOENT, errno.ENOTDIR):
                log.warning("cannot watch %s: %s", directory, os.strerror(number))
            return False
        entry = self._dirs.setdefault(wd, (directory, []))
        if on_event not in entry[1]:
            entry[1].append(on_event)
        self._wds[directory] = wd
        return True

    def close(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._dirs.clear()
        self._wds.clear()

    def _open(self) -> bool:
        if _LIBC is None:
            return False
        fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            why = os.strerror(ctypes.get_errno())
            log.warning("no inotify instance (%s): log files are polled", why)
            return False
        self._fd = fd
        self._loop = self._loop or asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read)
        return True

    def _read(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("inotify read failed: %s", exc.strerror)
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _, size = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + size]
            offset += _HEADER.size + size
            self._event(wd, mask, os.fsdecode(raw.rstrip(b"\0")))

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:  # events were lost: everyone looks
            for _, callbacks in list(self._dirs.values()):
                _call(callbacks, "")
            return
        entry = self._dirs.get(wd)
        if entry is None:
            return
        directory, callbacks = entry
        if mask & IN_IGNORED:  # the directory went (or was unmounted): its watch died
            del self._dirs[wd]
            if self._wds.get(directory) == wd:
                del self._wds[directory]
            name = ""
        _call(callbacks, name)


def _call(callbacks: list[OnEvent], name: str) -> None:
    for callback in list(callbacks):
        try:
            callback(name)
        except Exception:  # one watcher's bug must not starve the others
            log.exception("directory watch callback failed")
