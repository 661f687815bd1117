"""Following a plain log file: appends, rotation by rename, copytruncate; symlinks never read.

A log file's position is its (inode, offset), persisted by the state file, so a restart neither
replays nor skips lines, even across a rotation that happened while the daemon was down.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cookie_supervisor.background import Background
from cookie_supervisor.reports.lines import CHUNK, MAX_LINE, LineSplitter, relevant
from cookie_supervisor.reports.sink import OnReport, ReportMetrics, deliver
from cookie_supervisor.watcher import DirectoryWatch

log = logging.getLogger("cookie_supervisor.reports")  # one logger for every input, as ever

SYMLINK = "a symbolic link (not followed)"


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    position: tuple[int, int] | None = None  # (inode, offset) after these lines
    problem: str | None = None
    more: bool = False  # stopped before the end: read again at once


class LogFileFollower:
    """Follows one plain log file: appends, rotation by rename, copytruncate.

    The file's directory is watched (a watch on the file would die with its inode), on the one
    inotify instance of the daemon (watcher.DirectoryWatch), which wakes the follower; a slow
    poll covers filesystems without inotify. A symlink at the path is never followed (lstat,
    O_NOFOLLOW, and the opened file must be the one looked at: same st_dev/st_ino). Reading
    happens in a worker thread, handling on the loop. The first sight of the file marks its end
    (no history, even when it cannot be read yet); a file that appears later is read from its
    start; a cursor resumes at its inode and offset, in the rotated file (`app.log.1`, same
    directory) if the file was rotated meanwhile. After a rotation the old file is still drained for
    `rotate_grace`, since the writer goes on in it until it reopens the path. A truncation is
    noticed when the file is shorter than what was read: lines a writer adds between the
    truncation and the next read beyond the old length are lost, the known race of copytruncate.
    """

    def __init__(
        self,
        source: str,
        path: Path,
        on_report: OnReport,
        metrics: ReportMetrics,
        *,
        cursors: Mapping[str, str] | None = None,
        poll_interval: float = 5.0,
        rotate_grace: float = 30.0,
        watch: DirectoryWatch | None = None,
    ) -> None:
        self.source = source
        self.input = str(path)
        self.key = f"file:{source}:{path}"
        self.path = Path(os.path.abspath(path))
        self._on_report = on_report
        self._metrics = metrics
        self._poll = poll_interval
        self._resume = _parse_position((cursors or {}).get(self.key))
        self._position = self._resume
        self._at_end = self._resume is None  # first start: skip the history
        self._history = False
        self._fd: int | None = None
        self._read_pos = 0
        self._lines = LineSplitter()
        self._rotate_grace = rotate_grace
        self._old: tuple[int, LineSplitter, float] | None = None  # a rotated file still drained
        self._problem: str | None = ""  # "" = not yet known
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One inotify instance shared by every follower (ReportInputs), else one of its own.
        self._dirwatch = watch
        self._own_watch = watch is None
        self._background = Background()  # the follower's one task

    def cursors(self) -> dict[str, str]:
        if self._position is None:
            return {}
        inode, offset = self._position
        return {self.key: f"{inode}:{offset}"}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self._dirwatch is None:
            self._dirwatch = DirectoryWatch(self._loop)
        self._watch()
        self._background.spawn(self._run(), name=f"logfile-{self.input}")

    async def aclose(self) -> None:
        await self._background.aclose()
        if self._own_watch and self._dirwatch is not None:
            self._dirwatch.close()
        self._close()

    def poke(self) -> None:
        """Any thread: something may have changed."""
        if self._loop and self._wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _watch(self) -> None:
        directory = self.path.parent
        watch = self._dirwatch
        if watch is not None and not watch.watching(directory, self._directory_event):
            watch.watch(directory, self._directory_event)

    def _directory_event(self, directory: Path, name: str, mask: int) -> None:
        """On the loop: an entry of the file's directory changed ("" = maybe any)."""
        # the file itself, or a rotation (app.log.1, app.log-20261125) beside it
        if (not name or name.startswith(self.path.name)) and self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake
        while True:
            self._wake.clear()
            batch = await asyncio.to_thread(self._read)
            self._handle(batch)
            if batch.more:
                continue
            self._watch()  # the directory may exist by now (or exist again)
            # Not wait_for: on 3.11 it can swallow the cancellation that aclose sends.
            timer = asyncio.get_running_loop().call_later(self._poll, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    def _handle(self, batch: _Batch) -> None:
        self._report_problem(batch.problem)
        matched = 0
        for raw in batch.lines:
            if text := relevant(raw.decode("utf-8", "replace")):
                matched += 1
                deliver(self._on_report, self.source, text, self.input)
        if batch.position is not None:
            self._position = batch.position  # only now: a persisted cursor never skips a line
        if batch.lines:
            self._metrics.report_lines_read_total.labels(self.source, self.input).inc(
                len(batch.lines)
            )
        if matched:
            self._metrics.report_lines_matched_total.labels(self.source, self.input).inc(matched)

    def _report_problem(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        if problem:
            log.warning("log file %s of source %s: %s", self.input, self.source, problem)
        elif self._problem:
            log.info("log file %s of source %s is readable again", self.input, self.source)
        self._problem = problem
        self._metrics.report_input_up.labels(self.source, self.input).set(0 if problem else 1)

    # The methods below run in a worker thread, one call at a time.

    def _read(self) -> _Batch:
        batch = _Batch(lines=self._drain_old())
        if self._fd is None:
            batch.problem = self._open()
            if batch.problem:
                return batch
        assert self._fd is not None
        opened = os.fstat(self._fd)
        if opened.st_size < self._read_pos:  # copytruncate
            log.info("log file %s was truncated; reading from its start", self.input)
            self._seek(0)
        data = os.read(self._fd, CHUNK)
        self._read_pos += len(data)
        batch.lines += self._lines.feed(data)
        batch.position = (opened.st_ino, self._read_pos - self._lines.pending)
        if len(data) == CHUNK:
            batch.more = True
            return batch
        try:
            current = os.lstat(self.path)  # a symlink put at the path is a new file, not ours
        except OSError:
            return batch  # renamed away, the new file is not there yet: keep the old one
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            # Rotated. The writer may go on in the old file until it reopens the path
            # (logrotate's postrotate signal), so the old file is drained a while longer.
            batch.lines += self._drain_old(final=True)  # rotated twice within the grace
            self._old = (self._fd, self._lines, time.monotonic() + self._rotate_grace)
            self._fd, self._lines = None, LineSplitter()
            batch.more = True
        return batch

    def _drain_old(self, *, final: bool = False) -> list[bytes]:
        """Lines added to the rotated file since the last look; all of them at its deadline."""
        if self._old is None:
            return []
        fd, lines, deadline = self._old
        found: list[bytes] = []
        while data := os.read(fd, CHUNK):
            found += lines.feed(data)
        if final or time.monotonic() >= deadline:
            found += lines.flush()  # its unfinished last line stays so
            os.close(fd)
            self._old = None
        return found

    def _open(self) -> str | None:
        path = self.path
        if self._resume and not _same_inode(path, self._resume[0]):
            path = _rotated_sibling(self.path, self._resume[0]) or path
        try:
            # lstat: needs no read permission, never blocks on a FIFO, and never follows a
            # symlink (one put at the path could point at any file the daemon may read)
            info = os.lstat(path)
        except FileNotFoundError:
            self._at_end = False  # whatever appears at the path later is new
            return "missing"
        except OSError as exc:
            return _unreadable(exc)
        if stat.S_ISLNK(info.st_mode):
            return SYMLINK
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if self._at_end:
            # First sight: what the file holds now is history, even while it cannot be read.
            self._resume, self._at_end, self._history = (info.st_ino, info.st_size), False, True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            return SYMLINK if exc.errno == errno.ELOOP else _unreadable(exc)
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            os.close(fd)  # swapped between the look and the open: look again at the next turn
            return "replaced while being opened"
        info = opened
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return "not a regular file"
        resume, self._resume = self._resume, None
        offset = 0  # a file that appeared (or replaced ours) later: all of it is new
        if resume and resume[0] == info.st_ino:
            offset = resume[1] if resume[1] <= info.st_size else 0
            if self._history:  # start with a whole line
                offset = _last_line_start(fd, offset)
        self._history = False
        self._fd = fd
        self._seek(offset)
        return None

    def _seek(self, offset: int) -> None:
        assert self._fd is not None
        self._read_pos = os.lseek(self._fd, offset, os.SEEK_SET)
        self._lines.reset()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lines.reset()
        if self._old is not None:
            os.close(self._old[0])
            self._old = None


def _parse_position(cursor: str | None) -> tuple[int, int] | None:
    try:
        inode, offset = (int(part) for part in (cursor or "").split(":"))
    except ValueError:
        return None
    return (inode, offset) if inode >= 0 and offset >= 0 else None


def _same_inode(path: Path, inode: int) -> bool:
    try:
        info = os.lstat(path)  # a symlink is never the file a cursor names
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_ino == inode


def _rotated_sibling(path: Path, inode: int) -> Path | None:
    """The rotated copy of `path` (`app.log.1`, `app.log-20261125`) that has this inode."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return None
    for name in names:
        if (
            name.startswith(path.name)
            and name != path.name
            and _same_inode(path.parent / name, inode)
        ):
            return path.parent / name
    return None


def _last_line_start(fd: int, size: int) -> int:
    """Where the line unfinished at `size` starts (`size` if the line before it is complete)."""
    start = max(0, size - MAX_LINE)
    tail = os.pread(fd, size - start, start)
    newline = tail.rfind(b"\n")
    return start + newline + 1 if newline >= 0 else start


def _unreadable(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"unreadable ({name})"
