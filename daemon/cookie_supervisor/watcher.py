"""Notices changes to cookie files and reports each burst of them once, on the event loop.

watchdog watches each file's directory, not the file: uploads replace the file by rename, editors
delete and recreate it, and a watch on the file itself would die with its first inode. Events are
filtered to the file and debounced, because SCP writes in chunks and every chunk is an event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

# Reads (ours, the probe's copy, the backend's yt-dlp) raise opened/closed_no_write events;
# reacting to them would make every inspection trigger the next one.
_WRITE_EVENTS = frozenset({"created", "modified", "deleted", "moved", "closed", "attrib"})


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
        self._watched: set[Path] = set()

    @property
    def running(self) -> bool:
        return self._observer.is_alive()

    def start(self) -> None:
        self.rearm()
        self._observer.start()

    def rearm(self) -> None:
        """Watch every directory that exists now; one that appears later is picked up next call."""
        for directory in {p.parent for p in self._files.values()} - self._watched:
            if directory.is_dir():
                self._observer.schedule(_Handler(self, directory), str(directory))
                self._watched.add(directory)
            else:
                log.warning("cookie file directory %s does not exist; not watched yet", directory)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=2)

    def _touched(self, directory: Path, event: FileSystemEvent) -> None:
        """Observer thread: find the sources the event concerns and hand them to the loop."""
        paths = {_text(event.src_path), _text(getattr(event, "dest_path", ""))}
        for source, path in self._files.items():
            # A symlinked file (e.g. a Kubernetes secret) changes through its link's target,
            # so any write in its directory may be a change to it.
            if path.parent == directory and (str(path) in paths or path.is_symlink()):
                self._loop.call_soon_threadsafe(self._poke, source)

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
        if event.event_type in _WRITE_EVENTS and not event.is_directory:
            self._watcher._touched(self._directory, event)


def _text(path: str | bytes) -> str:
    return os.fsdecode(path) if path else ""
