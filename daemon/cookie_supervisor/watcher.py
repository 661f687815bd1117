"""Directory watches on one inotify instance read by the event loop, and the cookie files' watcher.

One instance for the whole daemon, read by the loop itself (no thread). watchdog, which the jar
watcher used before, gives every watched directory an inotify instance and two threads of its
own: with a log file per directory, 150 log files would be 150 instances, past the default limit
of 128 per user (`fs.inotify.max_user_instances`), and 300 threads. `DirectoryWatch` is that one
instance; the jar watcher (`FileWatcher`, here) and the log-file followers (`reports.logfile`)
ask it for the directories they need. Where inotify is missing (not Linux, or out of instances)
`watch` says so, and the callers' slower looks (the jar rescan, the log poll) are all there is.

Files are watched through their directory, not themselves: uploads replace a jar by rename,
editors delete and recreate it, and a watch on the file would die with its first inode. A
directory can be replaced too (deleted and recreated, or another one renamed over it), and an
inotify watch dies with its directory or follows it to its new name. So each jar directory's
parent is watched as well, and a change to the directory's entry there re-arms its watch at once
(the path is watched again: a new directory gets a new watch, the old one is dropped) and counts
as a change to its files. The periodic rescan calls `rearm()` for anything deeper (a grandparent
replaced, a directory that appears later).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import logging
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# (directory, name, mask): the watched directory, the entry in it something happened to and
# inotify's mask; name "" when it may be anything (the directory itself went or moved, or events
# were lost).
OnEvent = Callable[[Path, str, int], None]

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED = 0x4000, 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
# Writes only: reads (ours, the probe's copy, the backend's yt-dlp) raise IN_OPEN/IN_ACCESS/
# IN_CLOSE_NOWRITE, and reacting to them would make every inspection trigger the next one.
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
# What can happen to a watched directory, seen from its parent.
ENTRY_CHANGED = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.inotify_init1  # noqa: B018 (present?)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


@dataclass(slots=True)
class _Directory:
    wd: int | None = None  # None: not watched now (missing, or its watch died)
    callbacks: list[OnEvent] = field(default_factory=list)


class DirectoryWatch:
    """One inotify instance; `watch(directory, on_event)` adds a directory for a caller (once per
    callback, however many callers), `on_event(directory, name, mask)` runs on the loop for every
    change to an entry of it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop  # the running loop at the first watch, unless given
        self._fd: int | None = None
        self._closed = False
        self._dirs: dict[Path, _Directory] = {}
        self._paths: dict[int, list[Path]] = {}  # wd → the watched paths naming its directory

    @property
    def directories(self) -> int:
        """How many directories are watched now."""
        return sum(1 for d in self._dirs.values() if d.wd is not None)

    def watching(self, directory: Path, on_event: OnEvent) -> bool:
        """True when `directory` is watched now, for `on_event` among others."""
        entry = self._dirs.get(directory)
        return entry is not None and entry.wd is not None and on_event in entry.callbacks

    def watch(self, directory: Path, on_event: OnEvent) -> bool:
        """Watch `directory` for `on_event`; False when it cannot be (missing, no inotify, closed).

        Watching a path again re-arms it: when the path names another directory than the one
        watched (recreated, or renamed over), the new one is watched and the old watch, which
        follows the old directory wherever it went, is dropped.
        """
        if self._closed:
            return False
        entry = self._dirs.setdefault(directory, _Directory())
        if on_event not in entry.callbacks:
            entry.callbacks.append(on_event)
        if self._fd is None and not self._open():
            return False
        assert self._fd is not None and _LIBC is not None
        wd = _LIBC.inotify_add_watch(self._fd, os.fsencode(directory), MASK)
        if wd < 0:
            number = ctypes.get_errno()
            if number not in (errno.ENOENT, errno.ENOTDIR):
                log.warning("cannot watch %s: %s", directory, os.strerror(number))
            self._drop(directory)
            return False
        if wd != entry.wd:
            self._drop(directory)
            entry.wd = wd
            self._paths.setdefault(wd, []).append(directory)
        return True

    def close(self) -> None:
        self._closed = True  # a follower still running must not open a new instance
        if self._fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._dirs.clear()
        self._paths.clear()

    def _drop(self, directory: Path) -> None:
        """Stop watching what `directory` named, unless another watched path names it too."""
        entry = self._dirs[directory]
        wd, entry.wd = entry.wd, None
        if wd is None:
            return
        paths = self._paths.get(wd, [])
        if directory in paths:
            paths.remove(directory)
        if not paths:
            self._paths.pop(wd, None)
            if self._fd is not None and _LIBC is not None:
                _LIBC.inotify_rm_watch(self._fd, wd)  # EINVAL if it died meanwhile: fine

    def _open(self) -> bool:
        if _LIBC is None:
            return False
        fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            why = os.strerror(ctypes.get_errno())
            log.warning("no inotify instance (%s): files are looked at on a timer only", why)
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
            for directory, entry in list(self._dirs.items()):
                _call(entry.callbacks, directory, "", mask)
            return
        paths = self._paths.get(wd)
        if paths is None:
            return
        if mask & IN_IGNORED:  # the directory went (or was unmounted): its watch died
            del self._paths[wd]
            for directory in paths:
                self._dirs[directory].wd = None
            name = ""
        for directory in list(paths):
            if watched := self._dirs.get(directory):  # a callback may have closed the instance
                _call(watched.callbacks, directory, name, mask)


def _call(callbacks: list[OnEvent], directory: Path, name: str, mask: int) -> None:
    for callback in list(callbacks):
        try:
            callback(directory, name, mask)
        except Exception:  # one watcher's bug must not starve the others
            log.exception("directory watch callback failed")


class FileWatcher:
    """Calls `on_change(source)` on `loop` once per burst of changes to that source's file.

    Its directories are watched on `directories`, the daemon's one instance, which the log-file
    followers borrow (built here when none is given, and then closed by `stop`).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        files: Mapping[str, Path],
        on_change: Callable[[str], None],
        debounce: float = 0.25,
        directories: DirectoryWatch | None = None,
    ) -> None:
        self._loop = loop
        self._files = {name: Path(os.path.abspath(path)) for name, path in files.items()}
        self._on_change = on_change
        self._debounce = debounce
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.directories = directories or DirectoryWatch(loop)
        self._own = directories is None
        self._dirs = frozenset(p.parent for p in self._files.values())
        self._parents = frozenset(d.parent for d in self._dirs if d.parent != d)
        self._missing: set[Path] = set()  # warned about once
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True
        self.rearm()

    def rearm(self) -> set[Path]:
        """Watch every directory that exists now, again if it was replaced; those watched."""
        armed = set()
        for directory in self._dirs | self._parents:
            if self.directories.watch(directory, self._event):
                armed.add(directory)
                self._missing.discard(directory)
            elif directory in self._dirs and directory not in self._missing:
                log.warning("cookie file directory %s does not exist; not watched yet", directory)
                self._missing.add(directory)
        return armed

    def stop(self) -> None:
        self._running = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._own:
            self.directories.close()

    def _event(self, directory: Path, name: str, mask: int) -> None:
        if not self._running:
            return
        if directory in self._dirs:
            self._in_directory(directory, name)
        if directory in self._parents and (not name or mask & ENTRY_CHANGED):
            # a jar's directory was created, deleted or renamed here (or anything, for "")
            replaced = {d for d in self._dirs if d.parent == directory and name in ("", d.name)}
            if replaced:
                self._replaced(replaced)

    def _in_directory(self, directory: Path, name: str) -> None:
        if not name:  # the directory itself went or moved away, or events were lost
            self._replaced({directory})
            return
        for source, path in self._files.items():
            # A symlinked file (e.g. a Kubernetes secret) changes through its link's target,
            # so any write in its directory may be a change to it. A directory or a FIFO made
            # at the file's path is news about the file too (it is not_a_file now).
            if path.parent == directory and (path.name == name or path.is_symlink()):
                self._poke(source)

    def _replaced(self, directories: set[Path]) -> None:
        self.rearm()
        for source, path in self._files.items():
            if path.parent in directories:
                self._poke(source)

    def _poke(self, source: str) -> None:
        if timer := self._timers.get(source):
            timer.cancel()
        self._timers[source] = self._loop.call_later(self._debounce, self._fire, source)

    def _fire(self, source: str) -> None:
        self._timers.pop(source, None)
        self._on_change(source)
