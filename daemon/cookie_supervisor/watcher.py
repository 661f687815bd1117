"""Notices changes to cookie files and reports each burst of them once, on the event loop.

watchdog watches each file's directory, not the file: uploads replace the file by rename, editors
delete and recreate it, and a watch on the file itself would die with its first inode. Events are
filtered to the file and debounced, because SCP writes in chunks and every chunk is an event.

A directory can be replaced too (deleted and recreated, or another one renamed over it), and an
inotify watch dies with its directory or follows it to its new name. So each directory's parent
is watched as well, and the directory's own identity (device, inode) is checked: when it changes,
the watch is re-armed at once and its files count as changed. The periodic rescan calls `rearm()`
for anything deeper (a grandparent replaced, a directory that appears later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

log = logging.getLogger(__name__)
# watchdog (7.x) logs this at ERROR when an event reaches an inotify emitter that is being stopped:
# stop() empties the emitter's watch group while its thread still holds an event it read, and the
# event is dropped. Dropping it is what stopping means: our stops are the daemon's shutdown and the
# re-arming of a replaced directory (whose files are looked at again anyway). It was 2 SIGTERM
# stops in 16 with the jar's directory busy; nothing else logs this message.
_STOPPED_EMITTER = "InotifyEmitter.queue_events() called when the thread is inactive"


class _StoppedEmitterRace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.ERROR and record.msg == _STOPPED_EMITTER)


logging.getLogger("watchdog.observers.inotify").addFilter(_StoppedEmitterRace())

# Reads (ours, the probe's copy, the backend's yt-dlp) raise opened/closed_no_write events;
# reacting to them would make every inspection trigger the next one.
_WRITE_EVENTS = frozenset({"created", "modified", "deleted", "moved", "closed", "attrib"})
# What can happen to a watched directory, seen from its parent.
_DIRECTORY_EVENTS = frozenset({"created", "deleted", "moved"})


@dataclass(slots=True)
class _Watch:
    watch: ObservedWatch
    identity: tuple[int, int] | None  # (st_dev, st_ino) when armed; None once it died


class FileWatcher:
    """Calls `on_change(source)` on `loop` once per burst of changes to that source's file."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        files: Mapping[str, Path],
        on_change: Callable[[str], None],
        debounce: float = 0.25,
    ) -> None:
        self._loop = loop
        self._files = {name: Path(os.path.abspath(path)) for name, path in files.items()}
        self._on_change = on_change
        self._debounce = debounce
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._observer: BaseObserver = Observer()
        self._dirs = frozenset(p.parent for p in self._files.values())
        self._parents = frozenset(d.parent for d in self._dirs if d.parent != d)
        self._watches: dict[Path, _Watch] = {}  # touched on the loop's thread only
        self._missing: set[Path] = set()  # warned about once

    @property
    def running(self) -> bool:
        return self._observer.is_alive()

    def start(self) -> None:
        self.rearm()
        self._observer.start()

    def rearm(self) -> set[Path]:
        """Watch every directory that exists now, again if it was replaced; returns those armed.

        Runs on the loop's thread (watchdog's own lock is taken inside schedule/unschedule).
        """
        armed = set()
        for directory in self._dirs | self._parents:
            identity = _identity(directory)
            current = self._watches.get(directory)
            if current is not None and identity is not None and current.identity == identity:
                continue  # still the same directory, still watched
            if current is not None:
                with contextlib.suppress(KeyError):  # already gone from the observer
                    self._observer.unschedule(current.watch)
                del self._watches[directory]
            if identity is None:
                if directory in self._dirs and directory not in self._missing:
                    log.warning(
                        "cookie file directory %s does not exist; not watched yet", directory
                    )
                    self._missing.add(directory)
                continue
            try:
                watch = self._observer.schedule(_Handler(self, directory), str(directory))
            except OSError as exc:  # gone again already, or out of inotify watches
                log.warning("cannot watch %s: %s; the rescan tries again", directory, exc)
                continue
            self._watches[directory] = _Watch(watch, identity)
            self._missing.discard(directory)
            armed.add(directory)
        return armed

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=2)

    # --- observer thread --------------------------------------------------------------------

    def _event(self, directory: Path, event: FileSystemEvent) -> None:
        """Find what the event concerns and hand it to the loop; never blocks the observer."""
        paths = {_text(event.src_path), _text(getattr(event, "dest_path", ""))} - {""}
        if event.is_directory:
            if event.event_type in _DIRECTORY_EVENTS:
                self._directory_event(directory, event.event_type, paths)
            return
        if event.event_type not in _WRITE_EVENTS:
            return
        for source, path in self._files.items():
            # A symlinked file (e.g. a Kubernetes secret) changes through its link's target,
            # so any write in its directory may be a change to it.
            if path.parent == directory and (str(path) in paths or path.is_symlink()):
                self._loop.call_soon_threadsafe(self._poke, source)

    def _directory_event(self, directory: Path, kind: str, paths: set[str]) -> None:
        # A directory where a file should be is news about that file (it is not_a_file now).
        for source, path in self._files.items():
            if str(path) in paths:
                self._loop.call_soon_threadsafe(self._poke, source)
        # A watched directory went, came or moved: its parent's watch sees that, and its own
        # watch says "deleted" as it dies.
        died = kind == "deleted" and str(directory) in paths
        replaced = {d for d in self._dirs if str(d) in paths}
        if died or replaced:
            dead = directory if died else None
            self._loop.call_soon_threadsafe(self._replaced, dead, replaced)

    # --- loop thread ------------------------------------------------------------------------

    def _replaced(self, dead: Path | None, directories: set[Path]) -> None:
        if dead is not None and (current := self._watches.get(dead)):
            current.identity = None  # a new directory may get its inode: identity would not tell
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


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FileWatcher, directory: Path) -> None:
        self._watcher = watcher
        self._directory = directory

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watcher._event(self._directory, event)


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _text(path: str | bytes) -> str:
    return os.fsdecode(path) if path else ""
