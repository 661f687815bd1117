"""Passive detection: yt-dlp failures read from the backend's journal and plain log files.

For backends nobody wants to modify, the daemon follows their systemd units' journal
(`journalctl --follow --output=json`) and their plain log files, and hands every line that carries
a yt-dlp `ERROR:` or the "cookies are no longer valid" WARNING to `on_report(source, text, input)`
on the event loop. Nothing else is parsed; what a report leads to (classification, evidence,
coalescing) is decided where posted reports go. Each follower keeps a cursor (the journal's
`__CURSOR`, a log file's inode and offset) that the state file persists, so a daemon restart
neither replays nor skips lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cookie_supervisor.children import die_with_parent
from cookie_supervisor.core import backoff_delay
from cookie_supervisor.dirwatch import DirectoryWatch

if TYPE_CHECKING:
    from cookie_supervisor.config import SourceSettings

log = logging.getLogger(__name__)

OnReport = Callable[[str, str, str], None]  # (source, text, input)

# yt-dlp prints `ERROR: ` and one space before its text. Python logging's default `ERROR:root:`
# has none, uvicorn's `ERROR:    ` pads with several, and `[ERROR]` or `level=ERROR` are other
# programs' levels, not yt-dlp's.
_ERROR = re.compile(r"(?<![\w\[=])ERROR: (?=\S)")
_WARNING = re.compile(r"(?<![\w\[=])WARNING: (?=\S)")
_ROTATED = "cookies are no longer valid"  # the one WARNING that matters (docs/ytdlp.md)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # `--color always` output in a journal
MAX_LINE = 64 * 1024  # longer lines keep their head: yt-dlp's messages are far shorter
MAX_TEXT = 4096  # a report's text; the classifier needs the first sentence
_CHUNK = 1 << 20  # bytes read per turn, so a burst never holds the loop for long
SYMLINK = "a symbolic link (not followed)"


class _Count(Protocol):
    def inc(self, amount: float = ...) -> None: ...


class _Level(Protocol):
    def set(self, value: float) -> None: ...


class _Counters(Protocol):
    def labels(self, *values: str) -> _Count: ...


class _Gauges(Protocol):
    def labels(self, *values: str) -> _Level: ...


class ReportMetrics(Protocol):
    """What this module counts with, by shape: `metrics.Metrics`, or prometheus_client's
    Counter and Gauge labelled (source, input)."""

    @property
    def report_lines_read_total(self) -> _Counters: ...
    @property
    def report_lines_matched_total(self) -> _Counters: ...
    @property
    def report_input_up(self) -> _Gauges: ...


# --- which lines matter (pure) ----------------------------------------------------------------


def relevant_text(message: str) -> str | None:
    """The yt-dlp failure a (possibly multi-line) message carries, from its marker on; or None."""
    for raw in message.splitlines():
        line = _ANSI.sub("", raw) if "\x1b" in raw else raw
        if found := _ERROR.search(line):
            return line[found.start() :].strip()[:MAX_TEXT]
        found = _WARNING.search(line)
        if found and _ROTATED in line[found.end() :].lower():
            return line[found.start() :].strip()[:MAX_TEXT]
    return None


def journal_message(entry: Mapping[str, Any]) -> str | None:
    """An entry's MESSAGE: journalctl writes it as an array of byte values when it is not
    printable UTF-8 (colour codes, invalid bytes)."""
    value = entry.get("MESSAGE")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def relevant(line: str) -> str | None:
    """The text to classify for a journal JSON entry or a plain log line, or None to skip it.

    A JSON object without MESSAGE is a structured log line: any of its string values may hold
    yt-dlp's message.
    """
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            entry = json.loads(stripped)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            message = journal_message(entry)
            if message is not None:
                return relevant_text(message)
            for value in entry.values():
                if isinstance(value, str) and (text := relevant_text(value)):
                    return text
            return None
    return relevant_text(line)


class _Lines:
    """Splits a byte stream into lines. An overlong line keeps its first `limit` bytes;
    `pending` counts the bytes of the unfinished last line, so offsets stay exact."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._head = bytearray()
        self.pending = 0

    def feed(self, data: bytes) -> list[bytes]:
        *complete, rest = data.split(b"\n")
        lines = []
        for part in complete:
            self._add(part)
            lines.append(bytes(self._head))
            self.reset()
        self._add(rest)
        return lines

    def flush(self) -> list[bytes]:
        """The unfinished line, if any, as a line of its own (its file will not grow again)."""
        line = [bytes(self._head)] if self.pending else []
        self.reset()
        return line

    def reset(self) -> None:
        self._head.clear()
        self.pending = 0

    def _add(self, part: bytes) -> None:
        self.pending += len(part)
        room = self._limit - len(self._head)
        if room > 0:
            self._head += part[:room]


# --- the journal ------------------------------------------------------------------------------

# Where systemd looks for units (systemd.unit(5)); `systemctl` would need a running systemd.
UNIT_DIRS = tuple(
    Path(p)
    for p in [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/run/systemd/transient",
        "/run/systemd/generator",
        "/run/systemd/generator.early",
        "/run/systemd/generator.late",
        "/usr/local/lib/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ]
)
_UNIT_TYPES = (
    ".service",
    ".socket",
    ".scope",
    ".slice",
    ".timer",
    ".mount",
    ".path",
    ".target",
    ".device",
    ".swap",
    ".automount",
)
# Fields through which `journalctl --unit` matches an entry to a unit; asking for these only
# keeps lines short (a coredump entry of the unit would otherwise carry the whole core).
_UNIT_FIELDS = ("_SYSTEMD_UNIT", "UNIT", "OBJECT_SYSTEMD_UNIT", "COREDUMP_UNIT")
_OUTPUT_FIELDS = ",".join(("MESSAGE", *_UNIT_FIELDS))
_CURSOR_TIME = re.compile(r"(?:^|;)t=([0-9a-f]+)(?:;|$)")


def unit_name(name: str) -> str:
    """The unit journalctl matches for `--unit name`: a bare name means a service."""
    return name if name.endswith(_UNIT_TYPES) else f"{name}.service"


def unit_known(name: str, dirs: Iterable[Path] = UNIT_DIRS) -> bool:
    """True when a unit file (or its template) exists; a glob pattern cannot be checked."""
    unit = unit_name(name)
    if any(ch in unit for ch in "*?["):
        return True
    candidates = [unit]
    if "@" in unit:
        prefix, _, rest = unit.partition("@")
        candidates.append(f"{prefix}@{rest[rest.rfind('.') :]}")
    return any((d / c).exists() for d in dirs for c in candidates)


class JournalFollower:
    """Follows one source's units in one `journalctl --follow` child, restarted with backoff.

    The first start reads entries from the follower's creation on (`--since`), never history;
    later starts resume after the last cursor. A unit without a unit file is warned about and
    shows `report_input_up 0` until it logs something (it may be installed later, or the journal
    may come from another machine); it is followed all the same, since journalctl treats a unit
    without entries as no error.
    """

    def __init__(
        self,
        source: str,
        units: Sequence[str],
        on_report: OnReport,
        metrics: ReportMetrics,
        *,
        cursors: Mapping[str, str] | None = None,
        journal_args: Sequence[str] = (),
        journalctl: str = "journalctl",
        unit_dirs: Iterable[Path] = UNIT_DIRS,
        backoff: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.source = source
        self.key = f"journal:{source}"
        self._units = {name: unit_name(name) for name in units}
        self._on_report = on_report
        self._metrics = metrics
        self._cursor = (cursors or {}).get(self.key)
        self._since = time.time()
        self._journal_args = list(journal_args)
        self._journalctl = journalctl
        self._unit_dirs = list(unit_dirs)
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._known: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    def cursors(self) -> dict[str, str]:
        return {self.key: self._cursor} if self._cursor else {}

    def argv(self) -> list[str]:
        # --all: without it journalctl writes fields over 4 KiB as null.
        argv = [self._journalctl, "--follow", "--output=json", "--all", "--no-pager"]
        argv += [f"--output-fields={_OUTPUT_FIELDS}", *self._journal_args]
        for name in self._units:
            argv += ["--unit", name]
        if self._cursor:
            argv.append(f"--after-cursor={self._cursor}")
        else:
            argv.append(f"--since=@{self._since:.6f}")
        return argv

    async def start(self) -> None:
        self._known = {n for n in self._units if unit_known(n, self._unit_dirs)}
        for name in self._units.keys() - self._known:
            log.warning(
                "journal unit %r of source %s has no unit file; following it anyway",
                name,
                self.source,
            )
        self._task = asyncio.create_task(self._run(), name=f"journal-{self.source}")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set_up(running=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            why = await self._follow_once()
            if loop.time() - started > self._backoff_max:
                failures = 0  # it ran for a good while: this exit is a new problem
            # restart number failures + 1 waits base, 2×base, 4×base, … at most the cap
            delay = backoff_delay(failures + 1, self._backoff, self._backoff_max)
            failures += 1
            self.restarts += 1
            log.warning(
                "journalctl for source %s stopped (%s); restarting in %.1fs",
                self.source,
                why,
                delay,
            )
            await asyncio.sleep(delay)

    async def _follow_once(self) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=die_with_parent(),  # no journalctl outlives a SIGKILLed daemon
            )
        except OSError as exc:
            self._set_up(running=False)
            return f"cannot run {self._journalctl}: {exc.strerror}"
        assert proc.stdout and proc.stderr
        errors = asyncio.create_task(_tail(proc.stderr))
        self._set_up(running=True)
        lines = _Lines()
        try:
            while chunk := await proc.stdout.read(_CHUNK):
                self._handle(lines.feed(chunk))
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: aclose
                proc.kill()
                await proc.wait()
                errors.cancel()
            self._set_up(running=False)
        stderr = (await errors).decode("utf-8", "replace").strip()
        if code and self._cursor and "cursor" in stderr.lower():
            # A cursor journalctl cannot seek to (corrupt, or from a vacuumed journal): go on
            # from the time it names rather than retrying it forever.
            log.warning("journal cursor of source %s rejected; resuming by time", self.source)
            self._since = _cursor_time(self._cursor) or self._since
            self._cursor = None
        return f"exit code {code}" + (f": {stderr}" if stderr else "")

    def _handle(self, raw_lines: list[bytes]) -> None:
        read: Counter[str] = Counter()
        matched: Counter[str] = Counter()
        for raw in raw_lines:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            if isinstance(cursor := entry.get("__CURSOR"), str):
                self._cursor = cursor
            unit = self._input_of(entry)
            read[unit] += 1
            message = journal_message(entry)
            if message is not None and (text := relevant_text(message)):
                matched[unit] += 1
                _deliver(self._on_report, self.source, text, unit)
        for unit, n in read.items():
            self._metrics.report_lines_read_total.labels(self.source, unit).inc(n)
            if unit not in self._known:  # it logs, so it exists
                self._known.add(unit)
                self._metrics.report_input_up.labels(self.source, unit).set(1)
        for unit, n in matched.items():
            self._metrics.report_lines_matched_total.labels(self.source, unit).inc(n)

    def _input_of(self, entry: Mapping[str, Any]) -> str:
        for key in _UNIT_FIELDS:
            value = entry.get(key)
            if isinstance(value, str):
                for name, unit in self._units.items():
                    if fnmatchcase(value, unit):
                        return name
        return next(iter(self._units))

    def _set_up(self, *, running: bool) -> None:
        for name in self._units:
            up = running and name in self._known
            self._metrics.report_input_up.labels(self.source, name).set(1 if up else 0)


async def _tail(stream: asyncio.StreamReader, keep: int = 300) -> bytes:
    """Drains a child's stderr to its end (a full pipe would stall it), keeping the last bytes."""
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-keep:]
    return tail


def _cursor_time(cursor: str) -> float | None:
    found = _CURSOR_TIME.search(cursor)
    return int(found.group(1), 16) / 1e6 if found else None


# --- plain log files --------------------------------------------------------------------------


@dataclass
class _Batch:
    lines: list[bytes] = field(default_factory=list)
    position: tuple[int, int] | None = None  # (inode, offset) after these lines
    problem: str | None = None
    more: bool = False  # stopped before the end: read again at once


class LogFileFollower:
    """Follows one plain log file: appends, rotation by rename, copytruncate.

    The file's directory is watched (a watch on the file would die with its inode), on one
    inotify instance shared by every follower (dirwatch.py), which wakes the follower; a slow
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
        self._lines = _Lines()
        self._rotate_grace = rotate_grace
        self._old: tuple[int, _Lines, float] | None = None  # a rotated file still drained
        self._problem: str | None = ""  # "" = not yet known
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One inotify instance shared by every follower (ReportInputs), else one of its own.
        self._dirwatch = watch
        self._own_watch = watch is None
        self._task: asyncio.Task[None] | None = None

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
        self._task = asyncio.create_task(self._run(), name=f"logfile-{self.input}")

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_watch and self._dirwatch is not None:
            self._dirwatch.close()
        self._close()

    def poke(self) -> None:
        """Any thread: something may have changed."""
        if self._loop and self._wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _watch(self) -> None:
        directory = self.path.parent
        if self._dirwatch is not None and not self._dirwatch.watching(directory):
            self._dirwatch.watch(directory, self._directory_event)

    def _directory_event(self, name: str) -> None:
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
                _deliver(self._on_report, self.source, text, self.input)
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
        data = os.read(self._fd, _CHUNK)
        self._read_pos += len(data)
        batch.lines += self._lines.feed(data)
        batch.position = (opened.st_ino, self._read_pos - self._lines.pending)
        if len(data) == _CHUNK:
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
            self._fd, self._lines = None, _Lines()
            batch.more = True
        return batch

    def _drain_old(self, *, final: bool = False) -> list[bytes]:
        """Lines added to the rotated file since the last look; all of them at its deadline."""
        if self._old is None:
            return []
        fd, lines, deadline = self._old
        found: list[bytes] = []
        while data := os.read(fd, _CHUNK):
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


def _deliver(on_report: OnReport, source: str, text: str, input_: str) -> None:
    try:
        on_report(source, text, input_)
    except Exception:  # a bad report must not stop the follower
        log.exception("report handler failed for source %s", source)


# --- all of them ------------------------------------------------------------------------------


class ReportInputs:
    """Every source's journal and log-file followers, started and closed together."""

    def __init__(
        self,
        sources: Iterable[SourceSettings],
        on_report: OnReport,
        metrics: ReportMetrics,
        *,
        cursors: Mapping[str, str] | None = None,
        journal_args: Sequence[str] = (),
        journalctl: str = "journalctl",
        unit_dirs: Iterable[Path] = UNIT_DIRS,
        poll_interval: float = 5.0,
    ) -> None:
        self.followers: list[JournalFollower | LogFileFollower] = []
        # every log file's directory on one inotify instance, read on the loop: no thread per
        # file, and no instance per directory (the default limit is 128 per user)
        self.watch = DirectoryWatch()
        for source in sources:
            if source.journal_units:
                self.followers.append(
                    JournalFollower(
                        source.name,
                        source.journal_units,
                        on_report,
                        metrics,
                        cursors=cursors,
                        journal_args=journal_args,
                        journalctl=journalctl,
                        unit_dirs=unit_dirs,
                    )
                )
            for path in source.log_files:
                self.followers.append(
                    LogFileFollower(
                        source.name,
                        path,
                        on_report,
                        metrics,
                        cursors=cursors,
                        poll_interval=poll_interval,
                        watch=self.watch,
                    )
                )

    def cursors(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for follower in self.followers:
            merged.update(follower.cursors())
        return merged

    async def start(self) -> None:
        for follower in self.followers:
            await follower.start()

    async def aclose(self) -> None:
        for follower in self.followers:
            await follower.aclose()
        self.watch.close()
