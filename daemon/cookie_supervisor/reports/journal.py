"""Following the backend's systemd units: one `journalctl --follow --output=json` child per source.

Each entry of a followed unit whose MESSAGE carries a yt-dlp failure becomes a report. The
journal's `__CURSOR` is the follower's position, persisted by the state file, so a restart
neither replays nor skips entries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from cookie_supervisor.background import Background
from cookie_supervisor.backoff import backoff_delay
from cookie_supervisor.children import die_with_parent
from cookie_supervisor.reports.lines import CHUNK, LineSplitter, journal_message, relevant_text
from cookie_supervisor.reports.sink import OnReport, ReportMetrics, deliver

log = logging.getLogger("cookie_supervisor.reports")  # one logger for every input, as ever

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
        self._background = Background()  # the follower's one task
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
        self._background.spawn(self._run(), name=f"journal-{self.source}")

    async def aclose(self) -> None:
        await self._background.aclose()
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
        lines = LineSplitter()
        try:
            while chunk := await proc.stdout.read(CHUNK):
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
                deliver(self._on_report, self.source, text, unit)
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
