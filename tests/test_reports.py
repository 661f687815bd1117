"""Passive detection: the line filter, real journal files (systemd-journal-remote writes them,
journalctl follows them without a running journald) and real log files with rotation."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from cookie_supervisor.classify import Reason, classify
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.reports import (
    JournalFollower,
    LogFileFollower,
    ReportInputs,
    relevant,
    unit_known,
)
from tests.support import ROOT, cookie_jar, write_atomic

JOURNAL_REMOTE = next(
    (
        p
        for p in map(
            Path, ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
        )
        if p.exists()
    ),
    Path("systemd-journal-remote"),
)
BOT = "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. Use --cookies-from-browser or --cookies for the authentication."
ROTATED = "WARNING: [youtube] The provided YouTube account cookies are no longer valid. They have likely been rotated in the browser as a security measure."
RATE = "ERROR: [youtube] jNQXAC9IVRw: Video unavailable. This content isn't available, try again later. The current session has been rate-limited by YouTube for up to an hour."


class Metrics:
    """The three collectors the followers count with, on a private registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["source", "input"]
        self.report_lines_read_total = Counter(
            "cookie_supervisor_report_lines_read_total", "read", labels, registry=r
        )
        self.report_lines_matched_total = Counter(
            "cookie_supervisor_report_lines_matched_total", "matched", labels, registry=r
        )
        self.report_input_up = Gauge("cookie_supervisor_report_input_up", "up", labels, registry=r)

    def read(self, source: str, input_: str) -> float:
        return self._value("report_lines_read_total", source, input_) or 0.0

    def matched(self, source: str, input_: str) -> float:
        return self._value("report_lines_matched_total", source, input_) or 0.0

    def up(self, source: str, input_: str) -> float | None:
        return self._value("report_input_up", source, input_)

    def _value(self, name: str, source: str, input_: str) -> float | None:
        return self.registry.get_sample_value(
            f"cookie_supervisor_{name}", {"source": source, "input": input_}
        )


class Reports(list[tuple[str, str, str]]):
    """on_report's calls, checked to happen on the event loop's thread."""

    def __call__(self, source: str, text: str, input_: str) -> None:
        asyncio.get_running_loop()  # raises off the loop
        self.append((source, text, input_))

    def texts(self) -> list[str]:
        return [text for _, text, _ in self]


async def until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


# --- the filter -------------------------------------------------------------------------------


def _journal(message: str | list[int], **fields: str) -> str:
    return json.dumps({"__CURSOR": "s=1;i=1", "MESSAGE": message, **fields})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (BOT, BOT),
        ("2026-11-25 12:00:01 worker[812]: " + BOT, BOT),
        ("yt_dlp.utils.DownloadError: " + RATE, RATE),
        (ROTATED, ROTATED),
        ("[debug] " + ROTATED, ROTATED),
        (
            "\x1b[0;31mERROR:\x1b[0m [youtube] x: Private video. Sign in",
            "ERROR: [youtube] x: Private video. Sign in",
        ),
        ('WARNING: [youtube] Skipping client "ios" since it does not support cookies', None),
        ("WARNING: Only images are available for download", None),
        ("[download] 100% of 10.00KiB", None),
        ("ERROR:root:database is locked", None),  # Python logging's default format
        ("ERROR:    Exception in ASGI application", None),  # uvicorn's
        ("[ERROR]: something else", None),
        ("level=ERROR msg=boom", None),
        ("MYERROR: nope", None),
        ("", None),
        ("{not json ERROR: [youtube] x: Private video", "ERROR: [youtube] x: Private video"),
        (_journal(BOT), BOT),
        (_journal(list(("\x1b[0;31mERROR:\x1b[0m " + BOT[7:]).encode())), BOT),
        (_journal(list(b"ERROR: bad \xff byte")), "ERROR: bad \ufffd byte"),
        (_journal("Traceback (most recent call last):\n  File x\n" + RATE + "\n"), RATE),
        (_journal("Started ytd-backend.service"), None),
        (_journal(None), None),  # type: ignore[arg-type]
        (json.dumps({"level": "error", "msg": BOT}), BOT),  # a structured log line
        (json.dumps({"level": "info", "msg": "done"}), None),
    ],
)
def test_relevant(line: str, expected: str | None) -> None:
    assert relevant(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [(BOT, Reason.BOT_DETECTION), (ROTATED, Reason.COOKIES_ROTATED), (RATE, Reason.RATE_LIMITED)],
)
def test_relevant_text_classifies_like_a_posted_report(line: str, reason: Reason) -> None:
    text = relevant("Nov 25 ytd-backend[9]: " + line)
    assert text and classify(text).reason is reason


def test_unit_known_looks_for_unit_files_and_templates(tmp_path: Path) -> None:
    (tmp_path / "ytd-backend.service").touch()
    (tmp_path / "ytd-worker@.service").touch()
    (tmp_path / "ytd.socket").touch()
    assert unit_known("ytd-backend", [tmp_path])
    assert unit_known("ytd-backend.service", [tmp_path])
    assert unit_known("ytd-worker@3", [tmp_path])
    assert unit_known("ytd.socket", [tmp_path])
    assert unit_known("ytd-*", [tmp_path])  # a pattern cannot be checked
    assert not unit_known("ytd", [tmp_path])
    assert not unit_known("ghost", [tmp_path])


# --- real journal files -----------------------------------------------------------------------

BOOT_ID = "4f1c3a0e9b2d4c6f8a7e5d3c1b0a9f8e"
_monotonic = itertools.count(1_000_000)


def _field(name: str, value: str) -> bytes:
    data = value.encode()
    if b"\n" in data or b"\x1b" in data:  # the export format's binary form
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return f"{name}={value}\n".encode()


def append_journal(
    journal: Path, entries: Iterable[tuple[str, str]], realtime: float | None = None
) -> None:
    """Writes (unit, message) entries into a real journal file, as journald would."""
    export: list[str | bytes] = []
    at = int((realtime or time.time()) * 1e6)
    for i, (unit, message) in enumerate(entries):
        export.append(f"__REALTIME_TIMESTAMP={at + i}\n__MONOTONIC_TIMESTAMP={next(_monotonic)}\n")
        export.append(f"_BOOT_ID={BOOT_ID}\n_SYSTEMD_UNIT={unit}.service\nPRIORITY=3\n")
        export.append(_field("MESSAGE", message) + b"\n")
    source = journal.with_suffix(f".{next(_monotonic)}.export")
    source.write_bytes(
        b"".join(part if isinstance(part, bytes) else part.encode() for part in export)
    )
    subprocess.run(
        [str(JOURNAL_REMOTE), f"--output={journal}", str(source)], check=True, capture_output=True
    )


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    assert JOURNAL_REMOTE.exists(), "systemd-journal-remote is not installed (make test does it)"
    path = tmp_path / "backend.journal"  # absolute: journalctl 252 cannot follow a bare name
    append_journal(path, [("ytd-backend", "ytd-backend started")], realtime=time.time() - 3600)
    return path


@pytest.fixture
def unit_dirs(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "units"
    directory.mkdir()
    for unit in ("ytd-backend", "ytd-celery", "other"):
        (directory / f"{unit}.service").touch()
    return [directory]


def follower(
    journal: Path,
    reports: Reports,
    metrics: Metrics,
    unit_dirs: list[Path],
    units: Iterable[str] = ("ytd-backend", "ytd-celery"),
    **kwargs: object,
) -> JournalFollower:
    return JournalFollower(
        "default",
        list(units),
        reports,
        metrics,
        journal_args=[f"--file={journal}"],
        unit_dirs=unit_dirs,
        backoff=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_journal_reports_relevant_entries_of_its_units_only(
    journal: Path, unit_dirs: list[Path]
) -> None:
    append_journal(journal, [("ytd-backend", BOT)], realtime=time.time() - 3600)  # history
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs)
    await f.start()
    try:
        append_journal(
            journal,
            [
                ("ytd-backend", "[download] Destination: x.mp4"),
                ("ytd-backend", "\x1b[0;31mERROR:\x1b[0m " + BOT[7:]),  # a byte-array MESSAGE
                ("other", RATE),  # not ours
                ("ytd-celery", ROTATED),
                ("ytd-celery", "WARNING: Only images are available for download"),
            ],
        )
        await until(lambda: metrics.read("default", "ytd-celery") == 2, what="entries read")
        assert reports == [
            ("default", BOT, "ytd-backend"),
            ("default", ROTATED, "ytd-celery"),
        ]
        assert metrics.read("default", "ytd-backend") == 2  # history not replayed
        assert metrics.matched("default", "ytd-backend") == 1
        assert metrics.matched("default", "ytd-celery") == 1
        assert metrics.read("default", "other") == 0
        assert metrics.up("default", "ytd-backend") == 1
        assert f.cursors()["journal:default"].startswith("s=")
    finally:
        await f.aclose()
    assert metrics.up("default", "ytd-backend") == 0  # not followed any more


async def test_journal_cursor_resumes_without_replay_or_gap(
    journal: Path, unit_dirs: list[Path]
) -> None:
    reports, metrics = Reports(), Metrics()
    first = follower(journal, reports, metrics, unit_dirs)
    await first.start()
    append_journal(journal, [("ytd-backend", f"{BOT} #1"), ("ytd-backend", f"{BOT} #2")])
    await until(lambda: len(reports) == 2)
    await first.aclose()
    cursors = first.cursors()

    # Lines logged while the daemon is down are read after its restart, once.
    append_journal(journal, [("ytd-backend", f"{BOT} #3"), ("ytd-celery", f"{ROTATED} #4")])
    second = follower(journal, reports, metrics, unit_dirs, cursors=cursors)
    await second.start()
    try:
        append_journal(journal, [("ytd-backend", f"{BOT} #5")])
        await until(lambda: len(reports) >= 5)
        await until(lambda: metrics.read("default", "ytd-backend") == 4)
        assert [t.rsplit("#", 1)[1] for t in reports.texts()] == ["1", "2", "3", "4", "5"]
        assert second.cursors() != cursors
    finally:
        await second.aclose()


async def test_journalctl_exit_restarts_and_a_rejected_cursor_is_dropped(
    journal: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs, cursors={"journal:default": "bogus"})
    await f.start()
    try:
        # journalctl refuses the cursor and exits; the follower restarts it by time.
        await until(lambda: f.restarts >= 1 and not f.cursors(), what="a restart")
        assert "cursor of source default rejected" in caplog.text
        append_journal(journal, [("ytd-backend", BOT)])
        await until(lambda: reports.texts() == [BOT])
        assert f.cursors()
    finally:
        await f.aclose()


async def test_unit_without_unit_file_warns_and_runs_on(
    journal: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs, units=["ytd-backend", "ghost"])
    with caplog.at_level(logging.WARNING):
        await f.start()
    try:
        assert "journal unit 'ghost' of source default has no unit file" in caplog.text
        await until(lambda: metrics.up("default", "ytd-backend") == 1)
        assert metrics.up("default", "ghost") == 0
        append_journal(journal, [("ytd-backend", BOT)])
        await until(lambda: len(reports) == 1)
        append_journal(journal, [("ghost", RATE)])  # it exists after all: it logs
        await until(lambda: metrics.up("default", "ghost") == 1)
        assert reports.texts() == [BOT, RATE]
    finally:
        await f.aclose()


async def test_missing_journalctl_is_retried_with_input_down(
    tmp_path: Path, unit_dirs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    f = JournalFollower(
        "default",
        ["ytd-backend"],
        Reports(),
        metrics,
        journalctl=str(tmp_path / "no-journalctl"),
        unit_dirs=unit_dirs,
        backoff=0.01,
        backoff_max=0.05,
    )
    await f.start()
    try:
        await until(lambda: f.restarts >= 3)
        assert metrics.up("default", "ytd-backend") == 0
        assert "cannot run" in caplog.text
    finally:
        await f.aclose()


async def test_journal_burst_is_read_in_full(journal: Path, unit_dirs: list[Path]) -> None:
    reports, metrics = Reports(), Metrics()
    f = follower(journal, reports, metrics, unit_dirs)
    await f.start()
    try:
        lines = [("ytd-backend", BOT if i % 100 == 0 else f"[download] {i}") for i in range(10_000)]
        started = time.monotonic()  # the write is part of the burst: journalctl reads meanwhile
        append_journal(journal, lines)
        await until(lambda: metrics.read("default", "ytd-backend") == 10_000, timeout=20)
        elapsed = time.monotonic() - started
        assert len(reports) == 100 == metrics.matched("default", "ytd-backend")
        print(f"journal: 10000 entries in {elapsed:.3f}s = {10_000 / elapsed:.0f} entries/s")
    finally:
        await f.aclose()


# --- real log files ---------------------------------------------------------------------------


def append(path: Path, *lines: str, end: str = "\n") -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines[:-1]) + lines[-1] + end)


def file_follower(
    path: Path, reports: Reports, metrics: Metrics, **kwargs: object
) -> LogFileFollower:
    return LogFileFollower("default", path, reports, metrics, poll_interval=0.2, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "backend.log"
    path.write_text("old line\n" + BOT + " (yesterday)\n")
    return path


async def test_log_file_reports_new_relevant_lines_only(log: Path) -> None:
    reports, metrics = Reports(), Metrics()
    f = file_follower(log, reports, metrics)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(log)) == 1)
        append(log, "INFO: downloading", "2026-11-25 worker: " + BOT)
        append(log, "ERROR: [youtube] x: Private video. Sign", end="")  # still being written
        await until(lambda: metrics.read("default", str(log)) == 2)
        append(log, " in if you've been granted access")
        await until(lambda: len(reports) == 2)
        assert reports == [
            ("default", BOT, str(log)),
            (
                "default",
                "ERROR: [youtube] x: Private video. Sign in if you've been granted access",
                str(log),
            ),
        ]
        assert metrics.read("default", str(log)) == 3
        assert metrics.matched("default", str(log)) == 2
    finally:
        await f.aclose()


async def test_log_file_rotation_by_rename_and_copytruncate(log: Path) -> None:
    reports, metrics = Reports(), Metrics()
    f = file_follower(log, reports, metrics)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(log)) == 1)
        writer = log.open("a", buffering=1)
        writer.write(f"{BOT} #1\n")
        await until(lambda: len(reports) == 1)
        # logrotate's default: rename, create a new file, then the writer reopens the path
        # (postrotate); until it does, it writes to the old file.
        log.rename(log.with_name("backend.log.1"))
        append(log, f"{ROTATED} #2")
        await until(lambda: len(reports) == 2, what="the new file's line")
        writer.write(f"{BOT} #3\n")
        writer.close()
        await until(lambda: len(reports) == 3, what="the old file's late line")
        # copytruncate: the file is emptied in place and written from its start again.
        append(log, f"{BOT} #4")
        await until(lambda: len(reports) == 4)
        with log.open("r+") as truncated:
            truncated.truncate(0)
        await until(lambda: f.cursors()[f.key].endswith(":0"), what="the truncation")
        append(log, f"{RATE} #5")
        await until(lambda: len(reports) == 5)
        assert [t.rsplit("#", 1)[1] for t in reports.texts()] == ["1", "2", "3", "4", "5"]
        assert metrics.up("default", str(log)) == 1
    finally:
        await f.aclose()


async def test_log_file_cursor_resumes_without_replay_or_gap(log: Path) -> None:
    reports, metrics = Reports(), Metrics()
    first = file_follower(log, reports, metrics)
    await first.start()
    await until(lambda: metrics.up("default", str(log)) == 1)
    append(log, f"{BOT} #1")
    await until(lambda: len(reports) == 1)
    await first.aclose()

    # Down: two lines, then a rotation, then a line in the new file.
    append(log, f"{BOT} #2", f"{BOT} #3")
    log.rename(log.with_name("backend.log.1"))
    append(log, f"{BOT} #4")
    second = file_follower(log, reports, metrics, cursors=first.cursors())
    await second.start()
    try:
        await until(lambda: len(reports) >= 4)
        append(log, f"{BOT} #5")
        await until(lambda: len(reports) >= 5)
        assert [t.rsplit("#", 1)[1] for t in reports.texts()] == ["1", "2", "3", "4", "5"]
    finally:
        await second.aclose()


async def test_log_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    reports, metrics = Reports(), Metrics()
    path = tmp_path / "later" / "backend.log"
    f = file_follower(path, reports, metrics)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(path)) == 0)
        path.parent.mkdir()
        append(path, BOT)
        await until(lambda: reports.texts() == [BOT])
        assert metrics.up("default", str(path)) == 1
    finally:
        await f.aclose()


@pytest.mark.parametrize("kind", ["directory", "fifo"])
async def test_log_path_that_is_not_a_file_is_down_and_runs_on(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    reports, metrics = Reports(), Metrics()
    path = tmp_path / "backend.log"
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    f = file_follower(path, reports, metrics)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(path)) == 0)
        assert "not a regular file" in caplog.text
        path.rmdir() if kind == "directory" else path.unlink()
        append(path, BOT)  # fixed: a regular file now
        await until(lambda: metrics.up("default", str(path)) == 1)
    finally:
        await f.aclose()


_AS_UNPRIVILEGED = """
import asyncio, sys
from pathlib import Path
from tests.test_reports import Metrics, Reports, until, LogFileFollower

async def main() -> None:
    path, reports, metrics = Path(sys.argv[1]), Reports(), Metrics()
    f = LogFileFollower("default", path, reports, metrics, poll_interval=0.1)
    await f.start()
    await until(lambda: metrics.up("default", str(path)) == 0)
    print("down", flush=True)
    await until(lambda: reports, timeout=10)
    print("up", metrics.up("default", str(path)), reports[0][1], flush=True)
    await f.aclose()

asyncio.run(main())
"""


def test_unreadable_log_file_is_down_and_recovers(tmp_path: Path) -> None:
    # Root reads any file whatever its mode: as root, the follower runs without the two
    # capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
    path = tmp_path / "backend.log"
    path.write_text("history\n")
    path.chmod(0o000)
    drop = "-dac_override,-dac_read_search"
    setpriv = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'daemon'}"}
    child = subprocess.Popen(
        [
            *(setpriv if os.geteuid() == 0 else []),
            sys.executable,
            "-c",
            _AS_UNPRIVILEGED,
            str(path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout
    assert child.stdout.readline() == "down\n", child.communicate(timeout=5)
    path.chmod(0o644)
    append(path, BOT)
    out, err = child.communicate(timeout=15)
    assert out == f"up 1.0 {BOT}\n", err
    assert "unreadable (EACCES)" in err


async def test_log_file_burst_is_read_in_full(log: Path) -> None:
    reports, metrics = Reports(), Metrics()
    f = file_follower(log, reports, metrics)
    await f.start()
    try:
        await until(lambda: metrics.up("default", str(log)) == 1)
        started = time.monotonic()
        with log.open("a") as writer:
            for i in range(10_000):
                writer.write((BOT if i % 100 == 0 else f"INFO [download] {i:5d} of 10000") + "\n")
        await until(lambda: metrics.read("default", str(log)) == 10_000, timeout=10)
        elapsed = time.monotonic() - started
        assert len(reports) == 100 == metrics.matched("default", str(log))
        print(f"log file: 10000 lines in {elapsed:.3f}s = {10_000 / elapsed:.0f} lines/s")
    finally:
        await f.aclose()


# --- every source -----------------------------------------------------------------------------


async def test_report_inputs_follow_every_source_and_resume(
    journal: Path, unit_dirs: list[Path], log: Path, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    sources = [
        SourceSettings(name="main", cookies_file=jar, journal_units=["ytd-backend"]),
        SourceSettings(name="alt", cookies_file=jar, log_files=[log]),
        SourceSettings(name="quiet", cookies_file=jar),
    ]
    reports, metrics = Reports(), Metrics()

    def inputs(cursors: dict[str, str] | None = None) -> ReportInputs:
        return ReportInputs(
            sources,
            reports,
            metrics,
            cursors=cursors,
            journal_args=[f"--file={journal}"],
            unit_dirs=unit_dirs,
            poll_interval=0.2,
        )

    first = inputs()
    assert len(first.followers) == 2
    await first.start()
    await until(lambda: metrics.up("alt", str(log)) == 1 and metrics.up("main", "ytd-backend"))
    append_journal(journal, [("ytd-backend", BOT)])
    append(log, ROTATED)
    await until(lambda: len(reports) == 2)
    assert sorted(reports) == [("alt", ROTATED, str(log)), ("main", BOT, "ytd-backend")]
    await first.aclose()
    cursors = first.cursors()
    assert sorted(cursors) == ["file:alt:" + str(log), "journal:main"]

    append_journal(journal, [("ytd-backend", RATE)])
    append(log, BOT)
    second = inputs(cursors)
    await second.start()
    try:
        await until(lambda: len(reports) == 4)
        assert sorted(reports[2:]) == [("alt", BOT, str(log)), ("main", RATE, "ytd-backend")]
    finally:
        await second.aclose()


async def test_daemon_metrics_expose_the_report_series(log: Path) -> None:
    from cookie_supervisor.metrics import Metrics as DaemonMetrics

    metrics, reports = DaemonMetrics(), Reports()
    f = LogFileFollower("default", log, reports, metrics, poll_interval=0.2)
    await f.start()
    try:
        await until(lambda: metrics.report_input_up.value("default", str(log)) == 1)
        append(log, "INFO: fine", BOT)
        await until(lambda: len(reports) == 1)
    finally:
        await f.aclose()
    text = metrics.exposition().decode()
    labels = f'{{source="default",input="{log}"}}'
    assert f"cookie_supervisor_report_lines_read_total{labels} 2.0" in text
    assert f"cookie_supervisor_report_lines_matched_total{labels} 1.0" in text
    assert f"cookie_supervisor_report_input_up{labels} 1.0" in text
