"""The log-file follower (reports.logfile) on real log files: appends, rotation, cursors,
paths that are not files, unreadable files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cookie_supervisor.reports import LogFileFollower
from tests import reports_support
from tests.reports_support import (
    BOT,
    RATE,
    ROTATED,
    Metrics,
    Reports,
    append,
    until,
)
from tests.support import ROOT

# the shared fixtures this module uses (pytest finds fixtures among a module's names)
log_file = reports_support.log_file


def file_follower(
    path: Path, reports: Reports, metrics: Metrics, **kwargs: object
) -> LogFileFollower:
    return LogFileFollower("default", path, reports, metrics, poll_interval=0.2, **kwargs)  # type: ignore[arg-type]


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
from cookie_supervisor.reports import LogFileFollower
from tests.reports_support import Metrics, Reports, until

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
